"""Live experiments, champion vs challenger (ab_testing_framework, sql/021)."""

from __future__ import annotations

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb
from alphaplus_mlops.store.promotion import insert_decision


def start_experiment(
    db: Database, *, family: str, champion_id: str, challenger_id: str, rule: dict
) -> dict:
    """A running experiment of ``challenger_id`` against ``champion_id``; one running per
    family, so an earlier one (an older challenger) is aborted in the same transaction."""
    with db.connection() as conn, conn.transaction():
        conn.execute(
            queries.ABORT_RUNNING_EXPERIMENTS,
            {"family": family, "why": f"replaced by an experiment of {challenger_id}"},
        )
        return conn.execute(
            queries.INSERT_EXPERIMENT, (family, champion_id, challenger_id, jsonb(rule))
        ).fetchone()


def running_experiment(db: Database, family: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_RUNNING_EXPERIMENT, (family,)).fetchone()


def record_look(db: Database, experiment_id: str, statistic: dict) -> None:
    with db.connection() as conn:
        conn.execute(
            queries.UPDATE_EXPERIMENT_LOOK,
            {
                "id": experiment_id,
                "statistic": jsonb(statistic),
                "n": int(statistic["n"]),
                "p_value": statistic["p_value"],
            },
        )


def conclude_experiment(db: Database, experiment_id: str, *, status: str, verdict: str) -> None:
    """``status``: concluded (a verdict) or aborted (the experiment no longer applies)."""
    with db.connection() as conn:
        conn.execute(
            queries.CONCLUDE_EXPERIMENT, {"id": experiment_id, "status": status, "verdict": verdict}
        )


def experiments(db: Database, family: str) -> list[dict]:
    """The family's experiments, oldest first."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_EXPERIMENTS, (family,)).fetchall()


def record_verdict(
    db: Database, experiment: dict, *, outcome: str, reasons: list[str], inputs: dict
) -> str:
    """One look's automated_decision_making row (type 'live_experiment'); a stop or an
    expiry also retires the challenger (status not_promoted) and concludes the experiment,
    in the same transaction."""
    with db.connection() as conn, conn.transaction():
        decision = insert_decision(
            conn,
            decision_type="live_experiment",
            family=experiment["family"],
            version_id=str(experiment["challenger_version_id"]),
            rule="live_experiment",
            inputs={**inputs, "experiment_id": str(experiment["id"])},
            outcome=outcome,
            reasons=reasons,
            decided_by="ab_evaluation",
        )
        if outcome in ("stop", "expired"):
            conn.execute(queries.RETIRE_CHALLENGER, (experiment["challenger_version_id"],))
            conn.execute(
                queries.CONCLUDE_EXPERIMENT,
                {"id": experiment["id"], "status": "concluded", "verdict": outcome},
            )
    return str(decision)


def live_verdicts(db: Database) -> list[dict]:
    """Every look of a live experiment or a probation that did not just continue (a
    verdict, a rollback, a refused one), oldest first, with the version's number."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LIVE_VERDICTS).fetchall()
