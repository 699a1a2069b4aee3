"""The Dagster environment of a process: DAGSTER_HOME and its storage URL.

The CLI (``dev``, ``demo``, ``env``) and the tests use this, so Dagster's own storage is
always the project's PostgreSQL and never a silent SQLite fallback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from alphaplus_mlops.settings import ENV_DAGSTER_PG_URL, ENV_DAGSTER_STORAGE, Settings
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import connect, dagster_storage_url

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def dagster_home() -> Path:
    """DAGSTER_HOME if set, else the folder holding the project's dagster.yaml."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    for candidate in (Path.cwd(), PACKAGE_ROOT):
        if (candidate / "dagster.yaml").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        "no dagster.yaml found in the working directory or the project root; "
        "set DAGSTER_HOME to the folder that holds it"
    )


def dagster_environment(settings: Settings, database_url: str) -> dict[str, str]:
    storage = settings.dagster_storage_dir
    storage.mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(dagster_home()),
        ENV_DAGSTER_PG_URL: dagster_storage_url(database_url),
        ENV_DAGSTER_STORAGE: str(storage),
    }


_DAGSTER_STORAGE_LOCK_KEY = 0x44_41_47_53  # "DAGS"


def prepare_dagster(settings: Settings, database_url: str) -> dict[str, str]:
    """The Dagster environment, with Dagster's tables created once, under a lock.

    dagster-postgres creates its schema on first use; several processes doing that at
    once on a fresh database (five `retrain` calls, say) collide. Serialized here.
    """
    env = dagster_environment(settings, database_url)
    # Processes queue here on a fresh database: wait minutes, not the default 15 s.
    with environment_applied(env), connect(database_url, autocommit=True, lock_timeout=300) as conn:
        conn.execute(queries.ACQUIRE_ADVISORY_LOCK, (_DAGSTER_STORAGE_LOCK_KEY,))
        try:
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):
                pass
        finally:
            conn.execute(queries.RELEASE_ADVISORY_LOCK, (_DAGSTER_STORAGE_LOCK_KEY,))
    return env


@contextmanager
def environment_applied(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ for the block (Dagster reads its config from there)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def project_instance(settings: Settings, database_url: str) -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance (its dagster.yaml, storage in the project's
    database) for this block, leaving the process environment as it was."""
    env = prepare_dagster(settings, database_url)
    with environment_applied(env):
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    with instance:
        yield instance
