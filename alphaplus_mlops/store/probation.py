"""Probation after a promotion: the ledger move it follows, its conclusion, and the history
the automatic rollback's hysteresis reads (sql/022, core/probation.py)."""

from __future__ import annotations

from datetime import datetime

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.promotion import insert_decision

AUTO_ROLLBACK_ACTOR = "auto-rollback"


def latest_champion_move(db: Database, family: str) -> dict | None:
    """The family's latest promote or rollback ledger row, with both versions' numbers."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LATEST_CHAMPION_MOVE, (family,)).fetchone()


def probation_conclusion(db: Database, family: str, ledger_seq: int) -> dict | None:
    """The decision that ended the probation after ledger row ``ledger_seq`` (passed or
    rollback), None while it runs."""
    with db.connection() as conn:
        return conn.execute(
            queries.SELECT_PROBATION_CONCLUSION, (family, str(ledger_seq))
        ).fetchone()


def last_auto_rollback_at(db: Database, family: str) -> datetime | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LAST_AUTO_ROLLBACK, (family,)).fetchone()["at"]


def removed_by_auto_rollback(db: Database, version_id: str) -> bool:
    with db.connection() as conn:
        return bool(
            conn.execute(queries.SELECT_REMOVED_BY_AUTO_ROLLBACK, (version_id,)).fetchone()[
                "removed"
            ]
        )


def record_probation_look(
    db: Database, *, family: str, version_id: str, outcome: str, reasons: list[str], inputs: dict
) -> str:
    """One look's automated_decision_making row (type 'probation'); ``inputs`` carries the
    ledger_seq the probation follows."""
    with db.connection() as conn, conn.transaction():
        return str(
            insert_decision(
                conn,
                decision_type="probation",
                family=family,
                version_id=version_id,
                rule="auto_rollback",
                inputs=inputs,
                outcome=outcome,
                reasons=reasons,
                decided_by="probation_review",
            )
        )
