"""What live scoring reads: where each family's scoring left off, and when bars arrived."""

from __future__ import annotations

from datetime import datetime

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database


def last_scored_bars(db: Database, family: str, symbols: list[str]) -> dict[str, datetime | None]:
    """{symbol: the latest bar with a logged champion prediction of ``family``, or None}."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_LAST_SCORED_BARS, (family, list(symbols)))
        return {r["symbol"]: r["last_ts"] for r in found.fetchall()}


def dataset_symbols(db: Database, version_id: str) -> list[str]:
    """The symbols of the dataset ``version_id`` was trained on (empty when unrecorded)."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_VERSION_DATASET_SYMBOLS, (version_id,)).fetchone()
    return list(row["symbols"]) if row else []


def latest_bar_arrival(db: Database) -> datetime | None:
    """When the newest import that added bars was recorded (None: no bars yet)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_BAR_ARRIVAL).fetchone()["at"]
