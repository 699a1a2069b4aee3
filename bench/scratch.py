"""A throwaway migrated database for a bench: created on the server the settings resolve to
(ALPHAPLUS_DATABASE_URL, else the embedded one), dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.db import resolve_database_url, with_database
from alphaplus_mlops.store.migrations import migrate


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new, migrated database named ``prefix_<random>``."""
    server = resolve_database_url(Settings.from_env())
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
