"""Live outcomes of logged predictions and the rolling live metrics built on them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
import pandas as pd
from psycopg.rows import tuple_row

from alphaplus_mlops.core.live_metrics import OUTCOME_COLUMNS, WindowResult
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb, planned_once


def pending_series(db: Database, family: str) -> pd.DataFrame:
    with db.connection() as conn, planned_once(conn):
        # Planned once per pooled connection: planning it for each call considers every
        # month of the log. Its result columns are named, so a migration cannot break it.
        # Tuples made into columns: a frame from one dict per row cost 1.4 ms more on the
        # ~600 rows of a family at that size.
        rows = (
            conn.cursor(row_factory=tuple_row)
            .execute(queries.SELECT_PENDING_SERIES, {"family": family}, prepare=True)
            .fetchall()
        )
    version_ids, roles, symbols, bar_ts, signals = zip(*rows, strict=True) if rows else ((),) * 5
    return pd.DataFrame(
        {
            "model_version_id": pd.Series(version_ids, dtype=object),
            "role": pd.Series(roles, dtype=object),
            "symbol": pd.Series(symbols, dtype=object),
            "bar_ts": pd.DatetimeIndex(bar_ts, tz="UTC"),
            "signal": np.asarray(signals, dtype=np.int64),
        }
    )


def label_configs(db: Database, version_ids: list[str]) -> dict[str, dict]:
    """The label definition of each version's training dataset (versions without one are
    left out)."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_LABEL_CONFIGS, (version_ids,)).fetchall()
    return {r["model_version_id"]: r["label_config"] for r in rows}


def _value(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.to_pydatetime() if isinstance(v, pd.Timestamp) else v


def record_outcomes(db: Database, outcomes: pd.DataFrame) -> Counter:
    """Fill the outcomes of still-unrealized predictions, and each bar's first answer into
    live_outcomes, in one transaction; returns the log rows realized per role."""
    if outcomes.empty:
        return Counter()
    with db.connection() as conn, conn.transaction():
        conn.execute(queries.CREATE_STAGED_OUTCOMES)
        with conn.cursor().copy(queries.COPY_STAGED_OUTCOMES) as copy:
            for row in outcomes[OUTCOME_COLUMNS].itertuples(index=False):
                copy.write_row(tuple(_value(v) for v in row))
        conn.execute(queries.ANALYZE_STAGED_OUTCOMES)
        bars = pd.to_datetime(outcomes["bar_ts"], utc=True)
        span = {"first": bars.min().to_pydatetime(), "last": bars.max().to_pydatetime()}
        updated = conn.execute(queries.UPDATE_FROM_STAGED_OUTCOMES, span)
        realized = Counter(r["role"] for r in updated)
        conn.execute(queries.INSERT_LIVE_OUTCOMES_FROM_STAGED, span)
        return realized


def realized_series(db: Database, family: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_REALIZED_SERIES, (family,)).fetchall()


#: One ``live_outcomes.packed`` record (migration 016), as PostgreSQL's binary send
#: functions write it (big-endian).
WINDOW_RECORD = np.dtype(
    [
        ("bar_us", ">i8"),  # timestamptz: microseconds since 2000-01-01 UTC
        ("probability", ">f8"),
        ("signal", ">i2"),
        ("realized_label", ">i2"),
        ("realized_net_return", ">f8"),
    ]
)
_POSTGRES_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
SYMBOL_SEPARATOR = "\x1f"  # SELECT_REALIZED_WINDOW's: the ASCII unit separator


def realized_window(db: Database, version_id: str, role: str, bars: int) -> pd.DataFrame:
    """The first answer to each (symbol, bar) of the version's last ``bars`` realized bars
    in ``role``, with its outcome, sorted by bar and symbol."""
    with db.connection() as conn:
        row = conn.execute(
            queries.SELECT_REALIZED_WINDOW,
            {"version": version_id, "role": role, "bars": bars},
            binary=True,
        ).fetchone()
    symbols = row["symbols"].split(SYMBOL_SEPARATOR) if row["n"] else []
    records = row["records"] or b""
    if len(symbols) != row["n"] or len(records) != row["n"] * WINDOW_RECORD.itemsize:
        raise RuntimeError(
            f"realized_window: {row['n']} rows came back as {len(records)} bytes of records "
            f"and {len(symbols)} symbols"
        )
    return window_frame(symbols, records)


def window_frame(symbols: list[str], records: bytes) -> pd.DataFrame:
    """The window's frame from its symbols and packed records (WINDOW_RECORD, one per
    symbol), sorted by bar and symbol."""
    fields = np.frombuffer(records, dtype=WINDOW_RECORD)
    bar_us = fields["bar_us"].astype(np.int64) + _POSTGRES_EPOCH_US
    names = np.array(symbols, dtype=object)
    frame = pd.DataFrame(
        {
            "bar_ts": pd.to_datetime(bar_us, unit="us", utc=True),
            "symbol": names,
            "probability": fields["probability"].astype(np.float64),
            "signal": fields["signal"].astype(np.int64),
            "realized_label": fields["realized_label"].astype(np.int64),
            "realized_net_return": fields["realized_net_return"].astype(np.float64),
        }
    )
    # The rows arrive in the primary key's order, but that is the plan's doing, not the
    # statement's promise: check it (cheaper than a sort) and sort only when it is broken.
    step = np.diff(bar_us)
    if not ((step > 0) | ((step == 0) & (names[1:] > names[:-1]))).all():
        frame = frame.sort_values(["bar_ts", "symbol"], kind="stable", ignore_index=True)
    return frame


def record_windows(db: Database, version_id: str, role: str, windows: list[WindowResult]) -> None:
    with db.connection() as conn, conn.transaction():
        for w in windows:
            conn.execute(
                queries.UPSERT_LIVE_WINDOW,
                (
                    version_id,
                    role,
                    w.label,
                    w.window_start.to_pydatetime(),
                    w.window_end.to_pydatetime(),
                    w.n_predictions,
                    jsonb(w.metrics),
                ),
            )


def latest_live_window(db: Database, version_id: str, role: str, label: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_LIVE_WINDOW, (version_id, role, label)).fetchone()


def offline_evaluation(db: Database, version_id: str) -> dict | None:
    """The version's latest out-of-fold evaluation: what live metrics are measured against."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_OOF_EVALUATION, (version_id,)).fetchone()


# Where live scoring left off ------------------------------------------------------------


def last_scored_bars(db: Database, family: str, symbols: list[str]) -> dict[str, datetime | None]:
    """{symbol: the latest bar with a logged champion prediction of ``family``, or None}."""
    with db.connection() as conn, planned_once(conn):
        found = conn.execute(queries.SELECT_LAST_SCORED_BARS, (family, list(symbols)), prepare=True)
        return {r["symbol"]: r["last_ts"] for r in found.fetchall()}


def ensure_prediction_months(db: Database, first: datetime, last: datetime) -> int:
    """Create the month partitions of the prediction log (migration 025) from the month of
    ``first`` to that of ``last`` where missing, in a transaction of their own; how many
    were created. Attaching a month waits for open writes to model_versioning (its foreign
    key): done ahead of time (the prediction_months sensor), the log's writers seldom do."""
    with db.connection() as conn:
        return conn.execute(queries.ENSURE_PREDICTION_PARTITIONS, (first, last)).fetchone()[
            "created"
        ]


def dataset_symbols(db: Database, version_id: str) -> list[str]:
    """The symbols of the dataset ``version_id`` was trained on (empty when unrecorded)."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_VERSION_DATASET_SYMBOLS, (version_id,)).fetchone()
    return list(row["symbols"]) if row else []


def latest_bar_arrival(db: Database) -> datetime | None:
    """When the newest import that added bars was recorded (None: no bars yet)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_BAR_ARRIVAL).fetchone()["at"]
