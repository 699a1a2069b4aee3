"""Drift checks (model_drift_detection) and the yardstick each version keeps (sql/019)."""

from __future__ import annotations

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def frozen_yardstick(db: Database, version_id: str, compute) -> dict:
    """The version's yardstick: the stored one, or ``compute()`` stored now. Stored once:
    of two checks computing it at once, the first write stands and both return it."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_DRIFT_YARDSTICK, (version_id,)).fetchone()
    if row is not None and row["drift_yardstick"] is not None:
        return row["drift_yardstick"]
    computed = compute()
    with db.connection() as conn:
        conn.execute(queries.FREEZE_DRIFT_YARDSTICK, (jsonb(computed), version_id))
        return conn.execute(queries.SELECT_DRIFT_YARDSTICK, (version_id,)).fetchone()[
            "drift_yardstick"
        ]


def record_drift_check(db: Database, check: dict) -> dict:
    """Insert one model_drift_detection row; ``check`` holds the INSERT_DRIFT_CHECK fields."""
    fields = dict(check)
    for key in ("reference_window", "current_window", "feature_scores"):
        fields[key] = jsonb(fields[key])
    with db.connection() as conn:
        return conn.execute(queries.INSERT_DRIFT_CHECK, fields).fetchone()


def latest_drift_check(db: Database, family: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_DRIFT_CHECK, (family,)).fetchone()
