"""Quality gates: their rows (quality_gates) and their judgements (quality_gate_results)."""

from __future__ import annotations

from dataclasses import dataclass

from alphaplus_mlops.core.gates import GateJudgement
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


@dataclass(frozen=True)
class GateStatus:
    all_passed: bool
    gates: list[dict]

    def summary(self) -> str:
        parts = []
        for g in self.gates:
            mark = {True: "passed", False: "FAILED", None: "not run"}[g["passed"]]
            parts.append(f"{g['gate_name']} {mark}")
        return ", ".join(parts)


def load_gates(db: Database) -> dict[str, dict]:
    with db.connection() as conn:
        return {row["name"]: row for row in conn.execute(queries.SELECT_ENABLED_GATES)}


def record_gate_result(
    db: Database,
    judgement: GateJudgement,
    *,
    gate_id: str | None,
    run_id: str | None,
    version_id: str | None = None,
    dataset_id: str | None = None,
) -> None:
    with db.connection() as conn:
        conn.execute(
            queries.INSERT_GATE_RESULT,
            (
                version_id,
                dataset_id,
                gate_id,
                judgement.gate,
                judgement.passed,
                jsonb(judgement.measured),
                jsonb(judgement.thresholds),
                judgement.reason,
                "WARN" if judgement.passed else "ERROR",
                run_id,
            ),
        )


def gate_status_in(conn, version_id: str) -> GateStatus:
    rows = conn.execute(queries.SELECT_GATE_STATUS, (version_id,)).fetchall()
    return GateStatus(bool(rows) and all(r["passed"] is True for r in rows), rows)


def gate_status(db: Database, version_id: str) -> GateStatus:
    """The latest judgement of every enabled gate for a version; all must have passed."""
    with db.connection() as conn:
        return gate_status_in(conn, version_id)
