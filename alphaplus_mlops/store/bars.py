"""Reading and writing market bars. Every write is one transaction: all rows or none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from alphaplus_mlops.data.validation import BAR_COLUMNS, validate_bars
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database


@dataclass(frozen=True)
class UpsertResult:
    received: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.received - self.inserted - self.updated


@dataclass(frozen=True)
class SymbolSummary:
    symbol: str
    bars: int
    first_ts: datetime
    last_ts: datetime
    sources: str


def upsert_bars(db: Database, bars: pd.DataFrame, *, source: str) -> UpsertResult:
    """Validate ``bars`` and upsert them on (symbol, ts).

    Validation happens before the connection opens, so rejected input writes nothing;
    the COPY and the upsert share one transaction, so a failure midway writes nothing too.
    """
    clean = validate_bars(bars)
    with db.connection() as conn, conn.transaction():
        conn.execute(queries.CREATE_STAGED_BARS)
        with conn.cursor().copy(queries.COPY_STAGED_BARS) as copy:
            for row in clean[list(BAR_COLUMNS)].itertuples(index=False, name=None):
                copy.write_row((*row, source))
        flags = [r["inserted"] for r in conn.execute(queries.UPSERT_STAGED_BARS).fetchall()]
    inserted = sum(flags)
    return UpsertResult(received=len(clean), inserted=inserted, updated=len(flags) - inserted)


def summarize_bars(db: Database) -> list[SymbolSummary]:
    with db.connection() as conn:
        return [SymbolSummary(**row) for row in conn.execute(queries.BAR_SUMMARY_BY_SYMBOL)]


def count_bars(db: Database) -> int:
    with db.connection() as conn:
        return conn.execute(queries.COUNT_BARS).fetchone()["n"]


def load_bars(
    db: Database,
    symbols: list[str],
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    with db.connection() as conn:
        rows = conn.execute(
            queries.SELECT_BARS_FOR_SYMBOLS, (symbols, start, start, end, end)
        ).fetchall()
    frame = pd.DataFrame(rows, columns=list(BAR_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def load_recent_bars(db: Database, symbols: list[str], per_symbol: int) -> pd.DataFrame:
    """The last ``per_symbol`` bars of each symbol, oldest first."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_RECENT_BARS, (symbols, per_symbol)).fetchall()
    frame = pd.DataFrame(rows, columns=list(BAR_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def all_symbols(db: Database) -> list[str]:
    with db.connection() as conn:
        return [r["symbol"] for r in conn.execute(queries.SELECT_ALL_SYMBOLS)]
