"""One typed settings object, read from the environment once.

Every environment variable the project understands is named here, so that the README,
the CLI and the Dagster resources agree on one list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from alphaplus_mlops.store.artifacts import OBJECT_SCHEMES

ENV_DATABASE_URL = "ALPHAPLUS_DATABASE_URL"
ENV_HOME = "ALPHAPLUS_HOME"
ENV_DAGSTER_PG_URL = "ALPHAPLUS_DAGSTER_PG_URL"
ENV_DAGSTER_STORAGE = "ALPHAPLUS_DAGSTER_STORAGE"
ENV_MARKET_SOURCES = "ALPHAPLUS_MARKET_SOURCES"
ENV_SIM_SYMBOLS = "ALPHAPLUS_SIM_SYMBOLS"
ENV_SIM_SEED = "ALPHAPLUS_SIM_SEED"
ENV_SIM_BARS = "ALPHAPLUS_SIM_BARS"
ENV_MIGRATION_DATABASE_URL = "ALPHAPLUS_MIGRATION_DATABASE_URL"
ENV_HEARTBEAT_SECONDS = "ALPHAPLUS_HEARTBEAT_SECONDS"
ENV_TRAINING_STALE_SECONDS = "ALPHAPLUS_TRAINING_STALE_SECONDS"
ENV_LOCK_TIMEOUT_SECONDS = "ALPHAPLUS_LOCK_TIMEOUT_SECONDS"
ENV_STATEMENT_TIMEOUT_SECONDS = "ALPHAPLUS_STATEMENT_TIMEOUT_SECONDS"
ENV_PREDICTION_SPOOL_DIR = "ALPHAPLUS_PREDICTION_SPOOL_DIR"
ENV_REPLAY_FILE = "ALPHAPLUS_REPLAY_FILE"
ENV_ARTIFACT_URL = "ALPHAPLUS_ARTIFACT_URL"
ENV_EXECUTOR = "ALPHAPLUS_EXECUTOR"
ENV_CELERY_BROKER_URL = "ALPHAPLUS_CELERY_BROKER_URL"
ENV_CELERY_BACKEND_URL = "ALPHAPLUS_CELERY_BACKEND_URL"
EXECUTORS = ("multiprocess", "in_process", "celery")
DEFAULT_CELERY_BACKEND_URL = "rpc://"

DEFAULT_MARKET_SOURCES = ("sample", "simulator")
DEFAULT_SIM_SYMBOLS = ("SIM1",)
DEFAULT_SIM_SEED = 7
DEFAULT_SIM_BARS = 2520
# A training worker beats every 30 s; ten missed beats (5 min) and the reaper calls it dead.
DEFAULT_HEARTBEAT_SECONDS = 30
DEFAULT_TRAINING_STALE_SECONDS = 300
# No statement waits on a lock (the family lock of promotion) longer than 15 s, and none
# runs longer than 10 min: a hung holder fails its waiters with a message, not silence.
DEFAULT_LOCK_TIMEOUT_SECONDS = 15
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 600


class SettingsError(ValueError):
    """An environment variable holds a value the project cannot use."""


def _csv(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None or not value.strip():
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from exc
    if number <= 0:
        raise SettingsError(f"{name} must be positive, got {number}")
    return number


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _postgres_url(name: str, value: str | None) -> str | None:
    """The URL, checked without ever quoting it: any part of it may be a password."""
    if not value:
        return None
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise SettingsError(f"{name} must be a postgresql:// URL, got something else")
    if scheme.group(1) not in ("postgresql", "postgres"):
        raise SettingsError(
            f"{name} must be a postgresql:// URL, got the scheme {scheme.group(1)!r}"
        )
    if _BAD_PERCENT.search(value):
        raise SettingsError(
            f"{name} has a '%' that does not start a percent-encoded byte (%XX): encode a "
            "literal % in a password as %25"
        )
    return value


def _artifact_url(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    scheme = _SCHEME.match(value)
    allowed = ("file", *OBJECT_SCHEMES)
    if scheme is None or scheme.group(1) not in allowed:
        raise SettingsError(
            f"{ENV_ARTIFACT_URL} must be a URL starting with one of "
            f"{', '.join(s + '://' for s in allowed)}; got "
            + (f"the scheme {scheme.group(1)!r}" if scheme else "no scheme")
        )
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise SettingsError(
            f"{ENV_ARTIFACT_URL} names a bucket and prefix only: credentials go in the "
            "environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the GCS/Azure ones)"
        )
    if scheme.group(1) != "file" and not parts.netloc:
        raise SettingsError(f"{ENV_ARTIFACT_URL} must name a bucket, e.g. s3://bucket/prefix")
    return value.strip()


@dataclass(frozen=True)
class Settings:
    """What the environment says. Build it with :func:`Settings.from_env`."""

    # Out of repr: a URL may carry a password, and a Settings may end up in a log.
    database_url: str | None = field(repr=False)
    home: Path
    market_sources: tuple[str, ...] = DEFAULT_MARKET_SOURCES
    sim_symbols: tuple[str, ...] = DEFAULT_SIM_SYMBOLS
    sim_seed: int = DEFAULT_SIM_SEED
    sim_bars: int = DEFAULT_SIM_BARS
    migration_database_url: str | None = field(default=None, repr=False)
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS
    training_stale_seconds: int = DEFAULT_TRAINING_STALE_SECONDS
    lock_timeout_seconds: int = DEFAULT_LOCK_TIMEOUT_SECONDS
    statement_timeout_seconds: int = DEFAULT_STATEMENT_TIMEOUT_SECONDS
    # Where the prediction log spools while the database is unreachable (None: home/spool).
    prediction_spool_dir_override: Path | None = None
    # The market clock's replay source: a file of bars held back (None: the simulator).
    replay_file: Path | None = None
    # Where artifacts live when not in home/artifacts: s3://bucket/prefix, gs://, az://,
    # file:///path (None: the home's folder).
    artifact_url: str | None = None
    # How a run's steps execute: in subprocesses of the run (multiprocess), in the run's own
    # process (in_process), or on Celery workers on any host (celery).
    executor: str = "multiprocess"
    # The Celery broker (amqp://user:password@host:5672//, redis://...): may hold a password.
    celery_broker_url: str | None = field(default=None, repr=False)
    celery_backend_url: str = field(default=DEFAULT_CELERY_BACKEND_URL, repr=False)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def artifact_location(self) -> str:
        """What store.artifacts.open_artifact_store opens: the URL, or the home's folder."""
        return self.artifact_url or str(self.artifacts_dir)

    def require_celery_broker(self) -> str:
        if not self.celery_broker_url:
            raise SettingsError(
                f"Celery needs a broker: set {ENV_CELERY_BROKER_URL} "
                "(e.g. amqp://guest:guest@127.0.0.1:5672//)"
            )
        return self.celery_broker_url

    @property
    def dagster_storage_dir(self) -> Path:
        return self.home / "dagster"

    @property
    def prediction_spool_dir(self) -> Path:
        return self.prediction_spool_dir_override or self.home / "spool"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = _postgres_url(ENV_DATABASE_URL, env.get(ENV_DATABASE_URL))
        migration_url = _postgres_url(
            ENV_MIGRATION_DATABASE_URL, env.get(ENV_MIGRATION_DATABASE_URL)
        )
        if migration_url is not None and url is None:
            raise SettingsError(
                f"{ENV_MIGRATION_DATABASE_URL} needs {ENV_DATABASE_URL}: a separate migration "
                "role is for an external server (the embedded one has a single owner)"
            )
        heartbeat = _positive_int(
            ENV_HEARTBEAT_SECONDS, env.get(ENV_HEARTBEAT_SECONDS), DEFAULT_HEARTBEAT_SECONDS
        )
        stale = _positive_int(
            ENV_TRAINING_STALE_SECONDS,
            env.get(ENV_TRAINING_STALE_SECONDS),
            DEFAULT_TRAINING_STALE_SECONDS,
        )
        if stale < 2 * heartbeat:
            raise SettingsError(
                f"{ENV_TRAINING_STALE_SECONDS} ({stale}) must be at least twice "
                f"{ENV_HEARTBEAT_SECONDS} ({heartbeat}): one late beat is not a death"
            )
        home = Path(env.get(ENV_HOME) or ".alphaplus").expanduser().resolve()
        executor = (env.get(ENV_EXECUTOR) or "multiprocess").strip()
        if executor not in EXECUTORS:
            raise SettingsError(f"{ENV_EXECUTOR} accepts {', '.join(EXECUTORS)}; got {executor!r}")
        if executor == "celery" and not env.get(ENV_CELERY_BROKER_URL):
            raise SettingsError(
                f"{ENV_EXECUTOR}=celery needs {ENV_CELERY_BROKER_URL} "
                "(e.g. amqp://guest:guest@127.0.0.1:5672//)"
            )
        sources = _csv(env.get(ENV_MARKET_SOURCES), DEFAULT_MARKET_SOURCES)
        unknown = sorted(set(sources) - {"sample", "simulator"})
        if unknown:
            raise SettingsError(
                f"{ENV_MARKET_SOURCES} accepts 'sample' and 'simulator', got {unknown}"
            )
        return cls(
            database_url=url,
            home=home,
            market_sources=sources,
            sim_symbols=_csv(env.get(ENV_SIM_SYMBOLS), DEFAULT_SIM_SYMBOLS),
            sim_seed=_positive_int(ENV_SIM_SEED, env.get(ENV_SIM_SEED), DEFAULT_SIM_SEED),
            sim_bars=_positive_int(ENV_SIM_BARS, env.get(ENV_SIM_BARS), DEFAULT_SIM_BARS),
            migration_database_url=migration_url,
            heartbeat_seconds=heartbeat,
            training_stale_seconds=stale,
            lock_timeout_seconds=_positive_int(
                ENV_LOCK_TIMEOUT_SECONDS,
                env.get(ENV_LOCK_TIMEOUT_SECONDS),
                DEFAULT_LOCK_TIMEOUT_SECONDS,
            ),
            statement_timeout_seconds=_positive_int(
                ENV_STATEMENT_TIMEOUT_SECONDS,
                env.get(ENV_STATEMENT_TIMEOUT_SECONDS),
                DEFAULT_STATEMENT_TIMEOUT_SECONDS,
            ),
            prediction_spool_dir_override=(
                Path(env[ENV_PREDICTION_SPOOL_DIR]).expanduser().resolve()
                if env.get(ENV_PREDICTION_SPOOL_DIR)
                else None
            ),
            replay_file=(
                Path(env[ENV_REPLAY_FILE]).expanduser().resolve()
                if env.get(ENV_REPLAY_FILE)
                else None
            ),
            artifact_url=_artifact_url(env.get(ENV_ARTIFACT_URL)),
            executor=executor,
            celery_broker_url=env.get(ENV_CELERY_BROKER_URL) or None,
            celery_backend_url=env.get(ENV_CELERY_BACKEND_URL) or DEFAULT_CELERY_BACKEND_URL,
        )
