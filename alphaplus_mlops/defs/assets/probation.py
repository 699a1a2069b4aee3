"""probation_review: after a promotion, the new champion against the one it replaced (which
keeps answering in shadow) on live outcomes; significantly worse or past a guardrail, it is
rolled back automatically through the rollback path, with an alert (core/probation.py)."""

import dagster as dg

from alphaplus_mlops.core.experiment import paired_outcomes
from alphaplus_mlops.core.probation import ProbationRule, judge_probation, rollback_refusal
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.store.alerts import fire_alert
from alphaplus_mlops.store.clock import clock_now
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.live import realized_window
from alphaplus_mlops.store.probation import (
    AUTO_ROLLBACK_ACTOR,
    last_auto_rollback_at,
    latest_champion_move,
    probation_conclusion,
    record_probation_look,
    removed_by_auto_rollback,
)
from alphaplus_mlops.store.promotion import PromotionRefused, rollback

AUTO_ROLLBACK_ALERT = "auto_rollback"


@dg.asset(
    partitions_def=family_partitions,
    deps=[dg.AssetKey("live_performance")],
    group_name="live",
    description="After a promotion: the new champion against the previous one (answering in "
    "shadow) on the bars both answered; the one-sided always-valid test and drawdown and "
    "log-loss guardrails, from the auto_rollback row of quality_gates. Worse: rolled back "
    "(ledger actor auto-rollback) with an alert, unless the cooldown or the no-flapping rule "
    "refuses; every look is an automated_decision_making row (type probation).",
)
def probation_review(
    context: dg.AssetExecutionContext, postgres: PostgresResource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    db, family = postgres.db, context.partition_key
    move = latest_champion_move(db, family)
    if move is None or move["action"] != "promote" or move["previous_version_id"] is None:
        none = "none: the latest change of champion was not a promotion replacing one"
        return dg.MaterializeResult(metadata={"probation": none})
    seq = int(move["seq"])
    ended = probation_conclusion(db, family, seq)
    if ended is not None:
        return dg.MaterializeResult(metadata={"probation": f"ended: {ended['outcome']}"})
    rule = ProbationRule.from_gate(load_gates(db).get("auto_rollback"))
    champion_id, previous_id = str(move["model_version_id"]), str(move["previous_version_id"])
    paired = paired_outcomes(
        realized_window(db, champion_id, "champion", rule.max_bars),
        realized_window(db, previous_id, "previous", rule.max_bars),
    )
    # paired_outcomes names its sides for an experiment: here "challenger" is the new
    # champion (the first frame) and "champion" the previous one.
    verdict = judge_probation(
        paired.challenger,
        paired.champion,
        paired.challenger_log_loss,
        paired.champion_log_loss,
        rule,
    )
    outcome, reasons = verdict.outcome, list(verdict.reasons)
    inputs = {
        **verdict.as_dict(),
        "ledger_seq": seq,
        "champion_version": int(move["version"]),
        "previous_version": int(move["previous_version"]),
        "rule": rule.as_dict(),
    }
    if outcome == "rollback":
        outcome, reasons = _roll_back(context, postgres, artifacts, move, rule, inputs, reasons)
    record_probation_look(
        db, family=family, version_id=champion_id, outcome=outcome, reasons=reasons, inputs=inputs
    )
    context.log.info(f"{family} probation of v{move['version']}: {outcome} ({'; '.join(reasons)})")
    return dg.MaterializeResult(
        metadata={
            "probation": outcome,
            "champion_version": int(move["version"]),
            "previous_version": int(move["previous_version"]),
            "reasons": "; ".join(reasons),
            "paired_bars": verdict.n,
            "mean_edge_per_bar": verdict.mean_difference,
            "one_sided_p": verdict.p_value,
            "champion_drawdown": verdict.champion_drawdown,
            "log_loss_excess": verdict.log_loss_excess,
        }
    )


def _roll_back(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
    move: dict,
    rule: ProbationRule,
    inputs: dict,
    reasons: list[str],
) -> tuple[str, list[str]]:
    """Roll back unless the hysteresis refuses; alert either way. (outcome, reasons)"""
    db, family = postgres.db, context.partition_key
    subject = f"{family} v{move['version']}"
    refusal = rollback_refusal(
        rule,
        now=clock_now(db),
        last_auto_rollback_at=last_auto_rollback_at(db, family),
        target_removed_by_auto_rollback=removed_by_auto_rollback(
            db, str(move["previous_version_id"])
        ),
        target_version=int(move["previous_version"]),
    )
    if refusal is None:
        try:
            entry = rollback(
                db,
                artifacts.store,
                family,
                actor=AUTO_ROLLBACK_ACTOR,
                reason=f"probation of v{move['version']}: {reasons[0]}",
                to_version=int(move["previous_version"]),
                evidence={"probation": inputs},
                replacing=str(move["model_version_id"]),
            )
        except PromotionRefused as exc:
            refusal = f"the rollback was refused: {exc}"
        else:
            reasons.append(f"rolled back to v{move['previous_version']}: ledger #{entry.seq}")
            fire_alert(
                db,
                AUTO_ROLLBACK_ALERT,
                f"{subject} rolled back automatically to v{move['previous_version']}: {reasons[0]}",
                {"family": family, "ledger_seq": entry.seq, **inputs},
                subject=subject,
            )
            return "rollback", reasons
    reasons.append(f"not rolled back: {refusal}")
    fire_alert(
        db,
        AUTO_ROLLBACK_ALERT,
        f"{subject} is worse than v{move['previous_version']} on live outcomes but was not "
        f"rolled back ({refusal}): {reasons[0]}",
        {"family": family, **inputs},
        subject=subject,
    )
    return "rollback_refused", reasons
