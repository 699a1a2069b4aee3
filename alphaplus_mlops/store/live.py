"""Live outcomes of logged predictions and the rolling live metrics built on them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pandas as pd
from psycopg.rows import tuple_row

from alphaplus_mlops.core.live_metrics import OUTCOME_COLUMNS, WindowResult
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def pending_series(db: Database, family: str) -> pd.DataFrame:
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_PENDING_SERIES, {"family": family}).fetchall()
    frame = pd.DataFrame(rows, columns=["model_version_id", "role", "symbol", "bar_ts", "signal"])
    frame["bar_ts"] = pd.to_datetime(frame["bar_ts"], utc=True)
    return frame


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
    """Fill the outcomes of still-unrealized predictions in one transaction; returns the
    rows realized per role."""
    with db.connection() as conn, conn.transaction():
        conn.execute(queries.CREATE_STAGED_OUTCOMES)
        with conn.cursor().copy(queries.COPY_STAGED_OUTCOMES) as copy:
            for row in outcomes[OUTCOME_COLUMNS].itertuples(index=False):
                copy.write_row(tuple(_value(v) for v in row))
        return Counter(r["role"] for r in conn.execute(queries.UPDATE_FROM_STAGED_OUTCOMES))


def realized_series(db: Database, family: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_REALIZED_SERIES, (family,)).fetchall()


def realized_window(db: Database, version_id: str, role: str, bars: int) -> pd.DataFrame:
    columns = ["bar_ts", "symbol", "probability", "signal", "realized_label"]
    with db.connection() as conn:
        # Tuples, not the pool's dicts: a full window is thousands of rows, and a frame
        # built from dicts costs more than the query.
        with conn.cursor(row_factory=tuple_row) as cursor:
            rows = cursor.execute(
                queries.SELECT_REALIZED_WINDOW, {"version": version_id, "role": role, "bars": bars}
            ).fetchall()
    frame = pd.DataFrame.from_records(rows, columns=[*columns, "realized_net_return"])
    frame["bar_ts"] = pd.to_datetime(frame["bar_ts"], utc=True)
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
