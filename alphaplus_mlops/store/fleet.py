"""What the ML ops report and the dashboard read and write (ml_ops_reports, ml_ops_dashboard)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def live_equity(db: Database, since: datetime) -> pd.DataFrame:
    """family, version, role, bar_ts, net_return: the per-bar mean realized net return of
    every version in every role, for outcomes realized since ``since``, by bar."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_LIVE_EQUITY, {"since": since}).fetchall()
    columns = ["family", "version", "role", "bar_ts", "net_return"]
    return pd.DataFrame(found, columns=columns) if found else pd.DataFrame(columns=columns)


def drift_history(db: Database, since: datetime) -> list[dict]:
    """The drift checks since ``since``, oldest first, with their per-feature scores."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_DRIFT_HISTORY, {"since": since}).fetchall()


def timeline(db: Database, since: datetime) -> list[dict]:
    """Trainings, gate results, decisions (but looks that only continued) and ledger moves
    since ``since``: at, family, kind, version, what; oldest first."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_TIMELINE, {"since": since}).fetchall()


def record_report(
    db: Database,
    *,
    report_type: str,
    period_start: datetime,
    period_end: datetime,
    fmt: str,
    path: str | None = None,
    body: str | None = None,
) -> dict:
    """A report written to ``path`` (an artifact URI) or held in the row itself (``body``)."""
    with db.connection() as conn:
        return conn.execute(
            queries.INSERT_REPORT, (report_type, period_start, period_end, fmt, path, body)
        ).fetchone()


def latest_reports(db: Database, report_type: str, limit: int = 2) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_REPORTS, (report_type, limit)).fetchall()


def dashboard_facts(db: Database, families: list[str]) -> dict[str, dict]:
    """Per family: when its champion took office, its latest drift check, its open alerts
    and its latest experiment."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_DASHBOARD_FACTS, (list(families),)).fetchall()
    return {row["family"]: row for row in found}


def record_dashboard_snapshot(db: Database, fleet: list[dict], summary: dict) -> dict:
    with db.connection() as conn:
        return conn.execute(
            queries.INSERT_DASHBOARD_SNAPSHOT, (jsonb(fleet), jsonb(summary))
        ).fetchone()


def latest_dashboard_snapshot(db: Database) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_DASHBOARD).fetchone()


def experiments_since(db: Database, family: str, since: datetime) -> list[dict]:
    """The family's experiments running now or ended since ``since``, with both versions'
    numbers, oldest first."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_EXPERIMENTS_WITH_VERSIONS, (family, since)).fetchall()
