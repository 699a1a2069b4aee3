"""Retraining trigger configuration (automated_retraining_triggers)."""

from __future__ import annotations

from datetime import datetime

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.promotion import insert_decision


def triggers_of_type(db: Database, trigger_type: str) -> list[dict]:
    """The enabled triggers of one type (time, drift, performance)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_TRIGGERS_OF_TYPE, (trigger_type,)).fetchall()


def decision_for_evidence(db: Database, trigger_id: str, evidence: str) -> dict | None:
    """The trigger's recorded decision on this piece of evidence, if it made one."""
    with db.connection() as conn:
        return conn.execute(
            queries.SELECT_TRIGGER_DECISION_FOR_EVIDENCE, (str(trigger_id), evidence)
        ).fetchone()


def last_decision_on_version(db: Database, trigger_id: str, version_id: str) -> dict | None:
    """The trigger's latest decision (requested or refused) about this model version."""
    with db.connection() as conn:
        return conn.execute(
            queries.SELECT_LAST_TRIGGER_DECISION_ON_VERSION, (str(trigger_id), str(version_id))
        ).fetchone()


def requests_since(db: Database, trigger_id: str, family: str, since: datetime) -> list[datetime]:
    """When the trigger requested retrains of ``family`` after ``since``, newest first."""
    with db.connection() as conn:
        found = conn.execute(
            queries.SELECT_TRIGGER_REQUESTS_SINCE, (family, str(trigger_id), since)
        ).fetchall()
    return [r["decided_at"] for r in found]


def record_trigger_decision(
    db: Database,
    *,
    trigger: dict,
    family: str,
    version_id: str | None,
    evidence: str,
    outcome: str,
    reasons: list[str],
    inputs: dict,
) -> str:
    """One automated_decision_making row (type 'retrain_trigger'): ``outcome`` 'requested'
    or 'refused'; a request also marks the trigger fired."""
    with db.connection() as conn, conn.transaction():
        decision = insert_decision(
            conn,
            decision_type="retrain_trigger",
            family=family,
            version_id=version_id,
            rule=trigger["name"],
            inputs={**inputs, "trigger_id": str(trigger["id"]), "evidence": evidence},
            outcome=outcome,
            reasons=reasons,
            decided_by=f"{trigger['trigger_type']}_trigger_sensor",
        )
        if outcome == "requested":
            conn.execute(queries.MARK_TRIGGER_FIRED, (trigger["id"],))
    return str(decision)


def trigger_decisions(db: Database) -> list[dict]:
    """Every retrain trigger's decision (requested or refused), oldest first."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_TRIGGER_DECISIONS).fetchall()
