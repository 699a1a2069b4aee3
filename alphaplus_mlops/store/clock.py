"""The decision clock (sql/023_market_clock.sql): the wall clock in production; in a
replay's database the market's (the latest revealed bar plus the wall time since)."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, connect


def clock_now(db: Database, wall: datetime | None = None) -> datetime:
    """The time a decision is taken at: the market's when the database runs on it, else
    ``wall`` (a schedule's tick time) or the wall clock."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_CLOCK).fetchone()
    if row["market"]:
        return row["now"]
    return wall or datetime.now(UTC)


def use_market_clock(url: str) -> None:
    """Run the database at ``url`` on the market's clock from its next connection on (a
    replay's database; the setting is the database's own, so every process sees it)."""
    with connect(url, autocommit=True) as conn:
        name = conn.execute(queries.SELECT_CURRENT_DATABASE).fetchone()["name"]
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET alphaplus.clock = 'market'").format(sql.Identifier(name))
        )
