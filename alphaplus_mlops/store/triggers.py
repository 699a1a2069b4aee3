"""Retraining trigger configuration (automated_retraining_triggers)."""

from __future__ import annotations

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database


def triggers_of_type(db: Database, trigger_type: str) -> list[dict]:
    """The enabled triggers of one type (time, drift, performance)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_TRIGGERS_OF_TYPE, (trigger_type,)).fetchall()
