"""Where the database is, and how to open a connection to it.

The project's own code speaks psycopg 3. Dagster's storage speaks psycopg2 through
SQLAlchemy, which maps a bare ``postgresql://`` to psycopg 3 in SQLAlchemy 2.1 and then
fails on every event write, so Dagster gets the explicit ``postgresql+psycopg2`` scheme.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.embedded import start_embedded


def resolve_database_url(settings: Settings) -> str:
    """The URL in use: the configured server, or the embedded one (started on demand)."""
    if settings.database_url is not None:
        return settings.database_url
    return start_embedded(settings.embedded_data_dir)


def dagster_storage_url(database_url: str) -> str:
    """The same database, spelled for dagster-postgres (SQLAlchemy + psycopg2)."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql+psycopg2", *parts[1:]))


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and UI metadata."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url


def with_database(url: str, database: str) -> str:
    """The URL of another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)
