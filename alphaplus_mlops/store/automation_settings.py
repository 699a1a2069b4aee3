"""The automation's settings as rows (quality gates, retraining triggers): read from one
database and written over another's, as a replay's database takes production's."""

from __future__ import annotations

from dataclasses import dataclass

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


@dataclass(frozen=True)
class AutomationSettings:
    gates: list[dict]
    triggers: list[dict]


def read_automation(db: Database) -> AutomationSettings:
    with db.connection() as conn:
        gates = conn.execute(queries.SELECT_GATE_SETTINGS).fetchall()
        triggers = conn.execute(queries.SELECT_TRIGGER_SETTINGS).fetchall()
    return AutomationSettings([dict(g) for g in gates], [dict(t) for t in triggers])


def write_automation(db: Database, settings: AutomationSettings) -> None:
    """Every gate and trigger of ``settings`` over the rows of the same name, in one
    transaction (rows the target lacks are left out: both run the same migrations)."""
    with db.connection() as conn, conn.transaction():
        for gate in settings.gates:
            conn.execute(queries.COPY_GATE_SETTINGS, {**gate, "config": jsonb(gate["config"])})
        for trigger in settings.triggers:
            conn.execute(
                queries.COPY_TRIGGER_SETTINGS, {**trigger, "config": jsonb(trigger["config"])}
            )
