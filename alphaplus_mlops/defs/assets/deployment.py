"""deployment_decision and champion_model: from gate results to the serving champion."""

from datetime import timedelta

import dagster as dg
from pydantic import Field

from alphaplus_mlops.core.decision import ComparisonRule, decide
from alphaplus_mlops.core.experiment import ExperimentRule
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.store.experiments import start_experiment
from alphaplus_mlops.store.gate_results import gate_status, load_gates
from alphaplus_mlops.store.performance import evaluation_of
from alphaplus_mlops.store.promotion import (
    PromotionRefused,
    promote,
    record_decision,
)
from alphaplus_mlops.store.versions import current_champion, get_model_version, version_by_number

_STATUS = {
    "promote": None,
    "shadow": "challenger",
    "keep_champion": "not_promoted",
    "reject": "rejected",
}
_STAGE = {"promote": "gated", "shadow": "shadow", "keep_champion": "gated", "reject": "rejected"}


@dg.asset(
    partitions_def=family_partitions,
    io_manager_key="handoff_io_manager",
    group_name="deployment",
    description="The automated decision for this run's candidate (rule deploy-v2): promote, "
    "shadow as challenger, keep the champion, or reject; on paired tests against the "
    "champion with a minimum of shared bars; recorded with its rule, inputs and reasons. "
    "A shadowed challenger starts a live experiment (ab_evaluation).",
)
def deployment_decision(
    context: dg.AssetExecutionContext,
    model_evaluation: dict,
    postgres: PostgresResource,
) -> dg.Output[dict]:
    db = postgres.db
    candidate = get_model_version(db, model_evaluation["model_version_id"])
    status = gate_status(db, str(candidate["id"]))
    champion = current_champion(db, candidate["family"])
    evaluation = evaluation_of(db, candidate, str(champion["id"]) if champion else None)
    comparison = (evaluation.candidate_on_shared or {}).get("paired")
    rule = ComparisonRule.from_gate(load_gates(db).get("champion_comparison"))
    no_comparison = model_evaluation.get("no_comparison") if comparison is None else None
    decision = decide(
        status.all_passed, status.summary(), champion is not None, comparison, rule, no_comparison
    )
    inputs = {
        "gates": {g["gate_name"]: g["passed"] for g in status.gates},
        "champion_version_id": str(champion["id"]) if champion else None,
        "comparison": comparison,
        "no_comparison": no_comparison,
        "comparison_rule": rule.__dict__,
        "candidate_on_shared": evaluation.candidate_on_shared,
        "champion_on_shared": evaluation.champion_on_shared,
    }
    decision_id = record_decision(
        db,
        family=candidate["family"],
        version_id=str(candidate["id"]),
        rule=decision.rule,
        inputs=inputs,
        outcome=decision.outcome,
        reasons=decision.reasons,
        new_status=_STATUS[decision.outcome],
        stage=_STAGE[decision.outcome],
    )
    experiment = None
    if decision.outcome == "shadow" and champion is not None:
        experiment = start_experiment(
            db,
            family=candidate["family"],
            champion_id=str(champion["id"]),
            challenger_id=str(candidate["id"]),
            rule=ExperimentRule.from_gate(load_gates(db).get("live_experiment")).as_dict(),
        )
    context.log.info(
        f"{candidate['family']} v{candidate['version']}: {decision.outcome} "
        f"({'; '.join(decision.reasons)})"
    )
    value = {
        "decision_id": decision_id,
        "outcome": decision.outcome,
        "model_version_id": str(candidate["id"]),
        "version": candidate["version"],
        "champion_version_id": inputs["champion_version_id"],
    }
    return dg.Output(
        value,
        metadata={
            "outcome": decision.outcome,
            "version": int(candidate["version"]),
            "rule": decision.rule,
            "reasons": "; ".join(decision.reasons),
            "gates": status.summary(),
            "experiment": str(experiment["id"]) if experiment else "none",
        },
    )


class PromotionConfig(dg.Config):
    version: int | None = Field(
        default=None,
        description="Promote this version instead of the decision's candidate "
        "(manual promotion). Refused unless every quality gate passed for it.",
    )
    reason: str = Field(
        default="", description="Why, for the ledger (required for a manual promotion)."
    )
    actor: str = Field(default="", description="Who, for the ledger; default: the run.")
    replace_champion: bool = Field(
        default=False,
        description="Confirm that a manual promotion replaces the serving champion.",
    )
    max_evidence_age_days: int = Field(
        default=30, ge=1, description="A manual promotion refuses gate results older than this."
    )


@dg.asset(
    partitions_def=family_partitions,
    io_manager_key="handoff_io_manager",
    group_name="deployment",
    description="The serving champion. Promotes the decision's candidate (or the configured "
    "version) in one transaction with a ledger row, after re-reading its gate results and "
    "verifying its artifacts; refuses anything that has not passed every gate.",
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    deployment_decision: dict,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.Output[dict]:
    db, family = postgres.db, context.partition_key
    if config.version is not None:
        target = version_by_number(db, family, config.version)
        if target is None:
            raise dg.Failure(f"{family} has no version {config.version}")
        if not config.reason.strip():
            raise dg.Failure("a manual promotion needs a reason (config: reason)")
        champion = current_champion(db, family)
        if champion is not None and champion["id"] != target["id"] and not config.replace_champion:
            raise dg.Failure(
                f"{family} v{champion['version']} is serving: set replace_champion to replace "
                f"it by hand with v{config.version}"
            )
        reason = config.reason
        # Checked again under the family lock: no unconfirmed replacement of a champion
        # promoted meanwhile.
        replacing = str(champion["id"]) if champion else None
        max_age = timedelta(days=config.max_evidence_age_days)
    elif deployment_decision["outcome"] == "promote":
        target = get_model_version(db, deployment_decision["model_version_id"])
        reason = f"automated decision {deployment_decision['decision_id']}"
        # The decision compared the candidate with this champion; a newer one voids it.
        replacing = deployment_decision.get("champion_version_id")
        max_age = None  # the gates ran in this very run
    else:
        champion = current_champion(db, family)
        return dg.Output(
            {"champion_version_id": str(champion["id"]) if champion else None, "changed": False},
            metadata={
                "changed": False,
                "decision": deployment_decision["outcome"],
                "champion_version": int(champion["version"]) if champion else -1,
            },
        )
    if target["status"] == "champion":
        return dg.Output(
            {"champion_version_id": str(target["id"]), "changed": False},
            metadata={"changed": False, "champion_version": int(target["version"])},
        )
    actor = config.actor or f"dagster run {context.run.run_id}"
    try:
        entry = promote(
            db,
            artifacts.store,
            str(target["id"]),
            actor=actor,
            reason=reason,
            evidence={"run_id": context.run.run_id},
            replacing=replacing,
            max_evidence_age=max_age,
        )
    except PromotionRefused as exc:
        raise dg.Failure(str(exc)) from exc
    return dg.Output(
        {"champion_version_id": str(target["id"]), "changed": True, "ledger_id": entry.id},
        metadata={
            "changed": True,
            "champion_version": entry.version,
            "previous_version": entry.previous_version or -1,
            "ledger_seq": entry.seq,
            "reason": reason,
        },
    )
