"""Numbered SQL migrations from ``sql/``: applied in order, each once, each in a transaction.

A session-level advisory lock serializes concurrent runners, so two processes starting at
once end with one schema: the second waits, then finds nothing pending. Each applied file's
SHA-256 is recorded; a file edited after it was applied is refused, because the database
would no longer match what the repository says it is.

With a separate migration role (ALPHAPLUS_MIGRATION_DATABASE_URL), that role owns the schema
and :func:`grant_runtime_privileges` gives the runtime role data access only: it cannot
alter tables, drop the ledger's triggers, or update and delete ledger rows. Runs then check
that the schema is current instead of migrating it (:func:`ensure_current`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import connect, redact

DEFAULT_SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# Any constant works; it only has to be the same for every runner.
_MIGRATION_LOCK_KEY = 0x41_4C_50_48_41  # "ALPHA"
_FILE_PATTERN = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree, or a file is malformed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def discover(sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise MigrationError(f"migrations folder not found: {sql_dir}")
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files must be named NNN_lower_snake_name.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path.name} and {found[version].filename} share version {version}"
            )
        found[version] = Migration(
            version=version,
            name=match.group(2),
            path=path,
            checksum=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    return [found[v] for v in sorted(found)]


def _check_applied(migrations: list[Migration], applied: dict[int, dict]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:03d} ({row['name']}) applied, but no "
                "such file exists here: this code is older than the database"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"{migration.filename} was edited after it was applied "
                f"(recorded sha256 {row['checksum'][:12]}…, file now {migration.checksum[:12]}…). "
                "Applied migrations are immutable: restore the file and add a new migration."
            )


def migrate(url: str, sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    """Apply every pending migration. Returns the ones applied by this call."""
    migrations = discover(sql_dir)
    applied_now: list[Migration] = []
    # A migration may rewrite a big table: no statement timeout; waiting for another
    # migrator (or a long query holding a table) is bounded, at five minutes.
    with connect(url, autocommit=True, lock_timeout=300, statement_timeout=0) as conn:
        conn.execute(queries.ACQUIRE_ADVISORY_LOCK, (_MIGRATION_LOCK_KEY,))
        try:
            try:
                conn.execute(queries.CREATE_SCHEMA_MIGRATIONS)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MigrationError(_not_the_owner("the migration table", exc)) from exc
            applied = {
                row["version"]: row for row in conn.execute(queries.SELECT_APPLIED_MIGRATIONS)
            }
            _check_applied(migrations, applied)
            for migration in migrations:
                if migration.version in applied:
                    continue
                sql = migration.path.read_text()
                try:
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute(
                            queries.RECORD_MIGRATION,
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise MigrationError(_not_the_owner(migration.filename, exc)) from exc
                except Exception as exc:
                    raise MigrationError(
                        f"{migration.filename} failed and was rolled back: {exc}"
                    ) from exc
                applied_now.append(migration)
        finally:
            conn.execute(queries.RELEASE_ADVISORY_LOCK, (_MIGRATION_LOCK_KEY,))
    return applied_now


def _not_the_owner(what: str, exc: Exception) -> str:
    return (
        f"{what} needs a schema change this role may not make ({exc}): apply pending "
        "migrations as the owner, `alphaplus-mlops db migrate` with "
        "ALPHAPLUS_MIGRATION_DATABASE_URL set"
    )


def pending(url: str, sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    return [state.migration for state in status(url, sql_dir) if not state.applied]


def ensure_current(url: str, sql_dir: Path = DEFAULT_SQL_DIR) -> None:
    """Refuse to run on a schema older than the code (with a separate migration role,
    runs may not migrate it themselves)."""
    waiting = pending(url, sql_dir)
    if waiting:
        raise MigrationError(
            f"{redact(url)} lacks {len(waiting)} migration(s) "
            f"({', '.join(m.filename for m in waiting)}): run `alphaplus-mlops db migrate`, "
            "which applies them as the migration role (ALPHAPLUS_MIGRATION_DATABASE_URL)"
        )


def prepare_schema(runtime_url: str, migration_url: str | None) -> list[Migration]:
    """What a run or a command does before it starts: migrate the schema, or, when a
    migration role owns it, check that it is current."""
    if migration_url is None:
        # A current schema needs no DDL at all: a runtime role without the owner's URL runs.
        return migrate(runtime_url) if pending(runtime_url) else []
    ensure_current(runtime_url)
    return []


def migrate_as_owner(migration_url: str, runtime_url: str) -> list[Migration]:
    """`db migrate` with a migration role: apply as the owner, then (re)grant the runtime
    role its data access, which also covers tables the new migrations created."""
    applied = migrate(migration_url)
    grant_runtime_privileges(migration_url, runtime_role(runtime_url))
    return applied


def runtime_role(runtime_url: str) -> str:
    with connect(runtime_url) as conn:
        return conn.execute(queries.CURRENT_ROLE).fetchone()["role"]


def grant_runtime_privileges(migration_url: str, role: str) -> None:
    """Data access for ``role`` on every table and sequence, nothing more; on the ledger,
    reading and appending only. Idempotent; run after every migration."""
    with connect(migration_url) as conn, conn.transaction():
        owner = conn.execute(queries.CURRENT_ROLE).fetchone()["role"]
        if owner == role:
            raise MigrationError(
                "ALPHAPLUS_MIGRATION_DATABASE_URL and ALPHAPLUS_DATABASE_URL log in as the "
                f"same role ({role}): the runtime role would own the schema"
            )
        for statement in queries.GRANT_RUNTIME_PRIVILEGES:
            conn.execute(sql.SQL(statement).format(role=sql.Identifier(role)))


def status(url: str, sql_dir: Path = DEFAULT_SQL_DIR) -> list[MigrationState]:
    migrations = discover(sql_dir)
    with connect(url, autocommit=True) as conn:
        exists = conn.execute(queries.SCHEMA_MIGRATIONS_EXISTS).fetchone()["exists"]
        applied = (
            {row["version"]: row for row in conn.execute(queries.SELECT_APPLIED_MIGRATIONS)}
            if exists
            else {}
        )
    _check_applied(migrations, applied)
    return [
        MigrationState(m, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in migrations
    ]
