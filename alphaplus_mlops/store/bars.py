"""Reading and writing market bars. Every write is one transaction: all rows or none, and
every write is a recorded import whose restatements of stored bars keep their old values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from alphaplus_mlops.data.validation import (
    BAR_COLUMNS,
    BarValidationError,
    ImportRules,
    stored_neighbour_problems,
    validate_bars,
)
from alphaplus_mlops.monitoring.freshness import SymbolFreshness
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database


@dataclass(frozen=True)
class UpsertResult:
    received: int
    inserted: int
    updated: int
    import_id: str | None = None

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


@dataclass(frozen=True)
class BarRevision:
    symbol: str
    ts: datetime
    old: dict[str, float]
    new: dict[str, float]
    old_source: str
    new_source: str
    old_ingested_at: datetime
    revised_at: datetime
    import_id: str
    source_sha256: str | None


class BarRestatementRefused(BarValidationError):
    """The input would change bars already stored, and restating was not asked for."""


_OHLCV = ("open", "high", "low", "close", "volume")
# Stored bars read on each side of an import's span: enough for a median spacing.
_CONTEXT_BARS = 50


def upsert_bars(
    db: Database,
    bars: pd.DataFrame,
    *,
    source: str,
    source_sha256: str | None = None,
    restate: bool = False,
    rules: ImportRules | None = None,
) -> UpsertResult:
    """Validate ``bars`` and upsert them on (symbol, ts), as one recorded import.

    Stored bars with other values are restatements: refused (:class:`BarRestatementRefused`,
    naming them) unless ``restate``; with it, each one's old and new values go to
    ``market_bar_revisions`` in the same transaction as the update. The same values again
    are unchanged, from any source. With ``rules`` (bars from outside), the new bars must also
    fit the cadence of the stored bars around them and not jump from them. Validation happens
    before the connection opens, so
    rejected input writes nothing; everything else shares one transaction under an advisory
    lock, so a failure or refusal midway writes nothing either.
    """
    clean = validate_bars(bars)
    with db.connection() as conn, conn.transaction():
        conn.execute(queries.EXTEND_LOCK_TIMEOUT_FOR_IMPORT)
        conn.execute(queries.LOCK_BAR_IMPORTS)
        conn.execute(queries.CREATE_STAGED_BARS)
        with conn.cursor().copy(queries.COPY_STAGED_BARS) as copy:
            for row in clean[list(BAR_COLUMNS)].itertuples(index=False, name=None):
                copy.write_row((*row, source))
        if rules is not None:
            stored = conn.execute(
                queries.SELECT_STORED_BARS_AROUND_STAGED, {"n": _CONTEXT_BARS}
            ).fetchall()
            stored_frame = pd.DataFrame(stored, columns=list(BAR_COLUMNS))
            stored_frame["ts"] = pd.to_datetime(stored_frame["ts"], utc=True)
            problems = stored_neighbour_problems(clean, stored_frame, rules)
            if problems:
                raise BarValidationError(problems, source)
        restated = conn.execute(queries.SELECT_STAGED_BAR_RESTATEMENTS).fetchall()
        if restated and not restate:
            raise BarRestatementRefused([_restatement_message(restated)], source)
        new = conn.execute(queries.COUNT_STAGED_BARS_NEW).fetchone()["n"]
        import_id = conn.execute(
            queries.INSERT_BAR_IMPORT,
            (
                source,
                source_sha256,
                len(clean),
                new,
                len(restated),
                len(clean) - new - len(restated),
            ),
        ).fetchone()["id"]
        if restated:
            conn.execute(queries.INSERT_BAR_REVISIONS_FROM_STAGED, (import_id,))
        flags = [r["inserted"] for r in conn.execute(queries.UPSERT_STAGED_BARS).fetchall()]
    inserted = sum(flags)
    return UpsertResult(
        received=len(clean),
        inserted=inserted,
        updated=len(flags) - inserted,
        import_id=str(import_id),
    )


def _restatement_message(restated: list[dict]) -> str:
    shown = []
    for row in restated[:5]:
        changes = ", ".join(
            f"{k} {row[f'old_{k}']:g} -> {row[f'new_{k}']:g}"
            for k in _OHLCV
            if row[f"old_{k}"] != row[f"new_{k}"]
        )
        shown.append(
            f"{row['symbol']} {pd.Timestamp(row['ts']).tz_convert('UTC')}: {changes} "
            f"(stored from {row['old_source']})"
        )
    more = f" and {len(restated) - 5} more" if len(restated) > 5 else ""
    return (
        f"{len(restated)} bar(s) already stored with other values: {'; '.join(shown)}{more}; "
        "pass --restate to replace them (the old values are kept in market_bar_revisions)"
    )


def bar_revisions(db: Database, symbols: list[str]) -> list[BarRevision]:
    """Every recorded restatement of these symbols' bars, oldest first per bar."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_BAR_REVISIONS, (symbols,)).fetchall()
    return [
        BarRevision(
            symbol=r["symbol"],
            ts=r["ts"],
            old={k: r[f"old_{k}"] for k in _OHLCV},
            new={k: r[f"new_{k}"] for k in _OHLCV},
            old_source=r["old_source"],
            new_source=r["new_source"],
            old_ingested_at=r["old_ingested_at"],
            revised_at=r["revised_at"],
            import_id=str(r["import_id"]),
            source_sha256=r["source_sha256"],
        )
        for r in rows
    ]


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


def bar_fingerprints(db: Database, symbols: list[str]) -> dict[str, tuple]:
    """Per symbol with stored bars: (bar count, last ts, latest ingested_at, latest revision
    id), which changes whenever a bar of the symbol is added, restated or deleted. Symbols
    without bars are absent."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_BAR_FINGERPRINTS, (symbols,)).fetchall()
    return {
        r["symbol"]: (r["bars"], r["last_ts"], r["last_ingested"], r["last_revision"]) for r in rows
    }


def symbol_freshness(db: Database, cap: int = 10_000) -> list[SymbolFreshness]:
    """Per symbol with bars: its last bar and the market's bar times since (at most
    ``cap``)."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_SYMBOL_FRESHNESS, (cap,)).fetchall()
    return [SymbolFreshness(r["symbol"], r["last_ts"], int(r["bars_behind"])) for r in found]
