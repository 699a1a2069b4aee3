"""ab_evaluation: the running champion-vs-challenger experiment, looked at as live outcomes
arrive; its verdict promotes the challenger (through the gated promotion path), stops it,
or lets it expire (core/experiment.py)."""

import dagster as dg

from alphaplus_mlops.core.experiment import ExperimentRule, judge_experiment, paired_outcomes
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.store.experiments import (
    conclude_experiment,
    record_look,
    record_verdict,
    running_experiment,
)
from alphaplus_mlops.store.live import realized_window
from alphaplus_mlops.store.promotion import PromotionRefused, promote
from alphaplus_mlops.store.versions import current_champion, get_model_version


@dg.asset(
    partitions_def=family_partitions,
    deps=[dg.AssetKey("live_performance")],
    group_name="live",
    description="The family's running experiment (a shadowed challenger against the "
    "champion, on the bars both answered): the always-valid sequential test on the per-bar "
    "net-return difference, with drawdown and calibration guardrails; every look is an "
    "automated_decision_making row; promote, stop (challenger not_promoted) or expire.",
)
def ab_evaluation(
    context: dg.AssetExecutionContext, postgres: PostgresResource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    db, family = postgres.db, context.partition_key
    experiment = running_experiment(db, family)
    if experiment is None:
        return dg.MaterializeResult(metadata={"experiment": "none running"})
    champion = current_champion(db, family)
    challenger = get_model_version(db, str(experiment["challenger_version_id"]))
    if (
        champion is None
        or str(champion["id"]) != str(experiment["champion_version_id"])
        or challenger["status"] != "challenger"
    ):
        why = "the champion or the challenger changed since the experiment started"
        conclude_experiment(db, str(experiment["id"]), status="aborted", verdict=why)
        return dg.MaterializeResult(metadata={"experiment": str(experiment["id"]), "aborted": why})
    rule = ExperimentRule(**experiment["rule"]) if experiment["rule"] else ExperimentRule()
    paired = paired_outcomes(
        realized_window(db, str(challenger["id"]), "challenger", rule.max_bars),
        realized_window(db, str(champion["id"]), "champion", rule.max_bars),
    )
    verdict = judge_experiment(
        paired.challenger,
        paired.champion,
        paired.challenger_log_loss,
        paired.champion_log_loss,
        rule,
    )
    statistic = {**verdict.as_dict(), "rule": rule.as_dict()}
    record_look(db, str(experiment["id"]), statistic)
    reasons = list(verdict.reasons)
    outcome = verdict.outcome
    if outcome == "promote":
        try:
            entry = promote(
                db,
                artifacts.store,
                str(challenger["id"]),
                actor="ab_evaluation",
                reason=f"live experiment: {reasons[0]}",
                evidence={"experiment_id": str(experiment["id"]), "verdict": statistic},
                replacing=str(champion["id"]),
            )
            reasons.append(f"promoted: ledger #{entry.seq}")
        except PromotionRefused as exc:
            outcome = "stop"  # a challenger that cannot serve is not kept waiting
            reasons.append(f"promotion refused: {exc}")
    record_verdict(db, experiment, outcome=outcome, reasons=reasons, inputs=statistic)
    if verdict.outcome == "promote" and outcome == "promote":
        conclude_experiment(db, str(experiment["id"]), status="concluded", verdict="promote")
    context.log.info(f"{family} experiment: {outcome} ({'; '.join(reasons)})")
    return dg.MaterializeResult(
        metadata={
            "experiment": str(experiment["id"]),
            "champion_version": int(champion["version"]),
            "challenger_version": int(challenger["version"]),
            "verdict": outcome,
            "reasons": "; ".join(reasons),
            "paired_bars": verdict.n,
            "mean_edge_per_bar": verdict.mean_difference,
            "always_valid_p": verdict.p_value,
            "challenger_drawdown": verdict.challenger_drawdown,
            "log_loss_excess": verdict.log_loss_excess,
        }
    )
