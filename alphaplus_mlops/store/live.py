"""Live outcomes of logged predictions and the rolling live metrics built on them.

The SQL lives here rather than in queries.py: it is read and written only by the
monitoring assets and the status report.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from alphaplus_mlops.core.live_metrics import OUTCOME_COLUMNS, WindowResult
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb

# Every prediction of a series (version, role, symbol) that has an unrealized one, from the
# last prediction before its first unrealized bar on: that earlier position decides what
# the first unrealized bar pays to change it. One row per bar (the first answer), as the
# paper P&L counts one position per bar.
SELECT_PENDING_SERIES = """
WITH pending AS (
    SELECT model_version_id, role, symbol, min(bar_ts) AS first_ts
    FROM model_predictions
    WHERE family = %(family)s AND realized_at IS NULL
    GROUP BY model_version_id, role, symbol
)
SELECT DISTINCT ON (p.model_version_id, p.role, p.symbol, p.bar_ts)
       p.model_version_id::text AS model_version_id, p.role, p.symbol, p.bar_ts, p.signal
FROM pending s
JOIN model_predictions p
  ON p.model_version_id = s.model_version_id AND p.role = s.role AND p.symbol = s.symbol
 AND p.bar_ts >= coalesce(
        (SELECT max(q.bar_ts) FROM model_predictions q
         WHERE q.model_version_id = s.model_version_id AND q.role = s.role
           AND q.symbol = s.symbol AND q.bar_ts < s.first_ts),
        s.first_ts)
ORDER BY p.model_version_id, p.role, p.symbol, p.bar_ts, p.predicted_at
"""

SELECT_LABEL_CONFIGS = """
SELECT v.id::text AS model_version_id, d.label_config
FROM model_versioning v JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.id = ANY(%s::uuid[])
"""

CREATE_STAGED_OUTCOMES = """
CREATE TEMP TABLE staged_outcomes (
    model_version_id uuid, role text, symbol text, bar_ts timestamptz,
    realized_return double precision, realized_label smallint, realized_t1 timestamptz,
    realized_net_return double precision
) ON COMMIT DROP
"""

COPY_STAGED_OUTCOMES = (
    "COPY staged_outcomes (model_version_id, role, symbol, bar_ts, realized_return,"
    " realized_label, realized_t1, realized_net_return) FROM STDIN"
)

# Every logged answer for the (series, bar) gets the outcome, duplicates included; rows
# already realized are left as they are, so a second run changes nothing.
UPDATE_FROM_STAGED_OUTCOMES = """
UPDATE model_predictions p
SET realized_return = s.realized_return, realized_label = s.realized_label,
    realized_t1 = s.realized_t1, realized_net_return = s.realized_net_return,
    realized_at = now()
FROM staged_outcomes s
WHERE p.model_version_id = s.model_version_id AND p.role = s.role
  AND p.symbol = s.symbol AND p.bar_ts = s.bar_ts AND p.realized_at IS NULL
RETURNING p.role
"""

SELECT_REALIZED_SERIES = """
SELECT DISTINCT model_version_id::text AS model_version_id, role
FROM model_predictions
WHERE family = %s AND realized_at IS NOT NULL
ORDER BY 1, 2
"""

# The last %(bars)s bars holding realized predictions of a version in a role, one row per
# symbol and bar (the first answer), through the (version, role, bar_ts) index.
SELECT_REALIZED_WINDOW = """
SELECT DISTINCT ON (bar_ts, symbol)
       bar_ts, symbol, probability, signal, realized_label, realized_net_return
FROM model_predictions
WHERE model_version_id = %(version)s AND role = %(role)s AND realized_at IS NOT NULL
  AND bar_ts >= coalesce((
        SELECT min(bar_ts) FROM (
            SELECT DISTINCT bar_ts FROM model_predictions
            WHERE model_version_id = %(version)s AND role = %(role)s
              AND realized_at IS NOT NULL
            ORDER BY bar_ts DESC LIMIT %(bars)s) last_bars),
        '-infinity')
ORDER BY bar_ts, symbol, predicted_at
"""

UPSERT_LIVE_WINDOW = """
INSERT INTO real_time_model_performance
    (model_version_id, role, window_label, window_start, window_end, n_predictions, metrics)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (model_version_id, role, window_label, window_end) DO UPDATE
    SET window_start = EXCLUDED.window_start, n_predictions = EXCLUDED.n_predictions,
        metrics = EXCLUDED.metrics, recorded_at = now()
"""

SELECT_LATEST_LIVE_WINDOW = """
SELECT window_label, window_start, window_end, n_predictions, metrics
FROM real_time_model_performance
WHERE model_version_id = %s AND role = %s AND window_label = %s
ORDER BY window_end DESC, recorded_at DESC
LIMIT 1
"""


def pending_series(db: Database, family: str) -> pd.DataFrame:
    with db.connection() as conn:
        rows = conn.execute(SELECT_PENDING_SERIES, {"family": family}).fetchall()
    frame = pd.DataFrame(rows, columns=["model_version_id", "role", "symbol", "bar_ts", "signal"])
    frame["bar_ts"] = pd.to_datetime(frame["bar_ts"], utc=True)
    return frame


def label_configs(db: Database, version_ids: list[str]) -> dict[str, dict]:
    """The label definition of each version's training dataset (versions without one are
    left out)."""
    with db.connection() as conn:
        rows = conn.execute(SELECT_LABEL_CONFIGS, (version_ids,)).fetchall()
    return {r["model_version_id"]: r["label_config"] for r in rows}


def _value(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.to_pydatetime() if isinstance(v, pd.Timestamp) else v


def record_outcomes(db: Database, outcomes: pd.DataFrame) -> Counter:
    """Fill the outcomes of still-unrealized predictions in one transaction; returns the
    rows realized per role."""
    with db.connection() as conn, conn.transaction():
        conn.execute(CREATE_STAGED_OUTCOMES)
        with conn.cursor().copy(COPY_STAGED_OUTCOMES) as copy:
            for row in outcomes[OUTCOME_COLUMNS].itertuples(index=False):
                copy.write_row(tuple(_value(v) for v in row))
        return Counter(r["role"] for r in conn.execute(UPDATE_FROM_STAGED_OUTCOMES))


def realized_series(db: Database, family: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(SELECT_REALIZED_SERIES, (family,)).fetchall()


def realized_window(db: Database, version_id: str, role: str, bars: int) -> pd.DataFrame:
    with db.connection() as conn:
        rows = conn.execute(
            SELECT_REALIZED_WINDOW, {"version": version_id, "role": role, "bars": bars}
        ).fetchall()
    columns = ["bar_ts", "symbol", "probability", "signal", "realized_label"]
    frame = pd.DataFrame(rows, columns=[*columns, "realized_net_return"])
    frame["bar_ts"] = pd.to_datetime(frame["bar_ts"], utc=True)
    return frame


def record_windows(db: Database, version_id: str, role: str, windows: list[WindowResult]) -> None:
    with db.connection() as conn, conn.transaction():
        for w in windows:
            conn.execute(
                UPSERT_LIVE_WINDOW,
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
        return conn.execute(SELECT_LATEST_LIVE_WINDOW, (version_id, role, label)).fetchone()


def offline_evaluation(db: Database, version_id: str) -> dict | None:
    """The version's latest out-of-fold evaluation: what live metrics are measured against."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_OOF_EVALUATION, (version_id,)).fetchone()
