"""Where the database is, and how code borrows a connection to it.

The project's own code speaks psycopg 3 through :class:`Database`, a URL with a small
connection pool (psycopg_pool), so one asset step or CLI command reuses its connections
instead of opening one per query. Dagster's storage speaks psycopg2 through SQLAlchemy,
which maps a bare ``postgresql://`` to psycopg 3 in SQLAlchemy 2.1 and then fails on every
event write, so Dagster gets the explicit ``postgresql+psycopg2`` scheme.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.embedded import start_embedded

#: What a caller catches to mean "the database is away": a refused or dropped connection, or
#: no pooled connection within the pool's timeout. Sensors skip their tick on it.
DATABASE_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


def resolve_database_url(settings: Settings) -> str:
    """The URL in use: the configured server, or the embedded one (started on demand).

    The one place that decides which database the project talks to.
    """
    if settings.database_url is not None:
        return settings.database_url
    return start_embedded(settings.embedded_data_dir)


def dagster_storage_url(database_url: str) -> str:
    """The same database, spelled for dagster-postgres (SQLAlchemy + psycopg2)."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql+psycopg2", *parts[1:]))


# Query parameters libpq reads secrets from (`?password=`, a service file's password is
# not in the URL); every one of them is masked, whatever its case.
_SECRET_PARAMETERS = {"password", "sslpassword", "passfile"}


def redact(url: str) -> str:
    """The URL with every password masked (in the user part and in the query string), for
    output, logs and UI metadata; the rest is left exactly as written.

    The user part is everything after ``://`` up to the last ``@`` before any ``/`` (libpq
    stops at the first ``@``; the last covers a password holding an unencoded ``@`` too), so
    a password holding ``?``, ``#`` or ``@`` is masked whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<database URL not shown>"
    cut = rest[: rest.find("/") if "/" in rest else len(rest)].rfind("@")
    userinfo = ""
    if cut >= 0:
        user, _, password = rest[:cut].partition(":")
        # `user:@` (the embedded server's form) holds no secret.
        userinfo = f"{user}:***@" if password else rest[: cut + 1]
        rest = rest[cut + 1 :]
    base, question, query = rest.partition("?")
    parameters = []
    for parameter in query.split("&") if query else []:
        key, _, value = parameter.partition("=")
        secret = value and unquote_plus(key).strip().lower() in _SECRET_PARAMETERS
        parameters.append(f"{key}=***" if secret else parameter)
    return f"{scheme}://{userinfo}{base}{question}{'&'.join(parameters)}"


# Statements run with prepare=True inside planned_once() use their generic plan.
_GENERIC_PLANS_IN_THIS_TRANSACTION = "SET LOCAL plan_cache_mode = force_generic_plan"


@contextmanager
def planned_once(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """In the block (a transaction of a pooled connection), a statement executed with
    ``prepare=True`` is prepared on the connection, kept with it, and run on one generic
    plan made once, instead of being planned for each call.

    The pool prepares nothing by default (a kept plan of ``SELECT *`` fails once a migration
    adds a column), so only statements that name their columns belong here. It is for the
    reads of the prediction log, partitioned by month (migration 025): planning one for each
    call considers every month, 30-55 ms at 116 months, where its generic plan runs in 1-3 ms
    (bench/monitoring_queries.py).
    """
    before = conn.prepare_threshold
    # Prepare what is asked for with prepare=True, and nothing by count.
    conn.prepare_threshold = 2**31 - 1
    try:
        conn.execute(_GENERIC_PLANS_IN_THIS_TRANSACTION)
        yield conn
    finally:
        conn.prepare_threshold = before


def with_database(url: str, database: str) -> str:
    """The URL of another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def session_settings(
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """libpq keyword arguments every connection of the project uses: TCP keepalives (a
    server that vanished is noticed within about a minute, not after hours), a connect
    timeout, the session's lock and statement timeouts in seconds (0: none), and UTC as
    the session's time zone. Unset
    timeouts come from the environment (ALPHAPLUS_LOCK_TIMEOUT_SECONDS,
    ALPHAPLUS_STATEMENT_TIMEOUT_SECONDS)."""
    if lock_timeout is None or statement_timeout is None:
        settings = Settings.from_env()
        lock_timeout = settings.lock_timeout_seconds if lock_timeout is None else lock_timeout
        if statement_timeout is None:
            statement_timeout = settings.statement_timeout_seconds
    return {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        # Appended to the URL's own `options` (a search_path, a proxy's endpoint), which a
        # keyword argument would otherwise replace.
        "options": " ".join(
            filter(
                None,
                [
                    conninfo_to_dict(url).get("options") if url else None,
                    f"-c lock_timeout={int(lock_timeout * 1000)}",
                    f"-c statement_timeout={int(statement_timeout * 1000)}",
                    # Every session in UTC, whatever the server's default: SQL that turns a
                    # timestamptz into a date means the same everywhere, and psycopg hands
                    # back datetimes in datetime.timezone.utc, which pandas converts about
                    # three times faster than a ZoneInfo (a 600-row frame: 12 ms -> 4 ms).
                    "-c TimeZone=UTC",
                ],
            )
        ),
    }


def connect(
    url: str,
    *,
    autocommit: bool = False,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> psycopg.Connection:
    """A dedicated connection, for work that must own its session (session-level advisory
    locks, migrations, LISTEN). Everything else borrows from :class:`Database`."""
    return psycopg.connect(
        url,
        autocommit=autocommit,
        row_factory=dict_row,
        **session_settings(lock_timeout, statement_timeout, url),
    )


class Database:
    """The project's PostgreSQL database: its URL and a pool of connections.

    ``with db.connection() as conn:`` borrows a connection; the block's work is committed
    when it ends normally and rolled back when it raises, as with a fresh connection. The
    pool opens on first use (and says why when the server cannot be reached), checks a
    connection before lending it (a server restart or a dropped connection costs a
    reconnect, not an error), and closes with :meth:`close`; a closed Database refuses use.
    """

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 4,
        timeout: float = 15.0,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
    ):
        self.url = url
        self._max_size = max_size
        self._timeout = timeout
        self._session = session_settings(lock_timeout, statement_timeout, url)
        self._pool: ConnectionPool | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _open_pool(self) -> ConnectionPool:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._pool is None:
                pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._max_size,
                    # No server-side prepared statements: a migration that adds a column
                    # would otherwise break the cached plans of `SELECT *` on live pools.
                    kwargs={
                        "row_factory": dict_row,
                        "prepare_threshold": None,
                        **self._session,
                    },
                    check=ConnectionPool.check_connection,
                    timeout=self._timeout,
                    name="alphaplus",
                    open=True,
                )
                try:
                    pool.wait(timeout=self._timeout)
                except PoolTimeout:
                    pool.close()
                    # The pool hides the cause; one direct attempt names it.
                    psycopg.connect(self.url, **self._session).close()
                    raise
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """``timeout``: seconds to wait for a connection (default the pool's), for callers
        that would rather give up than wait, such as progress reports inside a fit."""
        pool = self._pool or self._open_pool()  # close() clears _pool; reopening refuses
        with pool.connection(timeout=timeout) as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({redact(self.url)!r})"


def json_safe(value: Any) -> Any:
    """JSON for JSONB: numpy scalars become floats, NaN and inf become null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def jsonb(value: Any) -> Jsonb:
    return Jsonb(json_safe(value))
