"""The performance trigger's detectors, frozen per (version, trigger), and its alarms
(sql/020)."""

from __future__ import annotations

from collections.abc import Callable

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def frozen_detector(
    db: Database, version_id: str, trigger_id: str, config: dict, compute: Callable[[], dict]
) -> dict:
    """The detector frozen for the version under this trigger configuration: the stored one,
    or ``compute()`` stored now (again when the trigger's configuration changed). Of two
    ticks freezing it at once, the first write stands and both return it."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_PERFORMANCE_DETECTOR, (version_id, trigger_id)).fetchone()
    if row is not None and row["config"] == config:
        return row["detector"]
    computed = compute()
    with db.connection() as conn:
        conn.execute(
            queries.UPSERT_PERFORMANCE_DETECTOR,
            (version_id, trigger_id, jsonb(config), jsonb(computed)),
        )
        return conn.execute(
            queries.SELECT_PERFORMANCE_DETECTOR, (version_id, trigger_id)
        ).fetchone()["detector"]


def oof_returns_location(db: Database, version_id: str) -> dict | None:
    """Where the version's out-of-fold per-bar net returns are (returns_uri, returns_sha256)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_OOF_RETURNS, (version_id,)).fetchone()


def alarm_history(db: Database, version_id: str, trigger_id: str) -> list[tuple]:
    """(alarm_bar_ts, change_bar_ts) of every alarm of the version under the trigger, oldest
    first."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_PERFORMANCE_ALARMS, (version_id, trigger_id))
        return [(r["alarm_bar_ts"], r["change_bar_ts"]) for r in rows]


def last_alarm(db: Database, version_id: str, trigger_id: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(
            queries.SELECT_LAST_PERFORMANCE_ALARM, (version_id, trigger_id)
        ).fetchone()


def record_alarm(db: Database, alarm: dict) -> dict:
    """One performance_alarms row (the INSERT_PERFORMANCE_ALARM fields); the same alarm
    recorded twice is one row, returned both times."""
    with db.connection() as conn:
        return conn.execute(queries.INSERT_PERFORMANCE_ALARM, alarm).fetchone()
