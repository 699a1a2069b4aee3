"""The model_evaluation asset: candidate vs champion on the same out-of-sample rows."""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.plots import equity_plot_markdown
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families import get_family
from alphaplus_mlops.modeling.assessment import (
    PriorTrials,
    compare_on_rows,
    evaluate_predictions,
    onnx_parity,
    rows_to_judge,
    single_row_latency_us,
)
from alphaplus_mlops.modeling.model_files import (
    load_dataset,
    load_frame,
    load_model,
    load_returns,
    store_returns,
)
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.store.artifact_audit import report_unreadable_champion
from alphaplus_mlops.store.artifacts import ArtifactIntegrityError
from alphaplus_mlops.store.db import Database, json_safe
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.performance import comparison_split, prior_trials, record_performance
from alphaplus_mlops.store.versions import current_champion, get_model_version

# How many recent trials' returns measure the trials' mean correlation (all count in N).
MAX_CORRELATED_TRIALS = 30
SHOWN_ML = ["roc_auc", "accuracy", "f1", "log_loss", "brier"]
SHOWN_BUSINESS = [
    "net_sharpe",
    "profit_factor",
    "max_drawdown",
    "hit_rate",
    "turnover",
    "probabilistic_sharpe",
    "deflated_sharpe",
]


class EvaluationConfig(dg.Config):
    cost_bps: float | None = Field(
        default=None,
        description="One-way cost in bps (fees plus half spread); default: the cost_bps of "
        "the business_metrics gate row, else 5.",
    )
    band: float = Field(default=0.0, description="Flat when |p - 0.5| <= band.")
    compare_from: str | None = Field(
        default=None,
        description="Judge the candidate against the champion only on bars from this time "
        "(ISO) on, as the performance trigger asks after a detected change; all bars after "
        "the champion's training when fewer than 10 per symbol are that recent.",
    )

    def compare_from_ts(self) -> pd.Timestamp:
        try:
            ts = pd.Timestamp(self.compare_from)
        except ValueError as exc:
            raise ValueError(f"compare_from {self.compare_from!r} is not an ISO time") from exc
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts


@dg.asset(
    partitions_def=family_partitions,
    ins={"trained_model": dg.AssetIn(), "training_dataset": dg.AssetIn()},
    io_manager_key="handoff_io_manager",
    group_name="training",
    kinds={"onnx"},
    description="ML and cost-aware business metrics of the candidate's out-of-fold "
    "predictions, PSR/DSR and ONNX parity; paired tests of the candidate's procedure against "
    "the champion on the bars after the champion's training; in model_performance_tracking.",
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    trained_model: dict,
    training_dataset: dict,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.Output[dict]:
    db, store = postgres.db, artifacts.store
    family = get_family(context.partition_key)
    candidate = get_model_version(db, trained_model["model_version_id"])
    dataset = load_dataset(store, training_dataset)
    oof = load_frame(store, candidate["oof_uri"], candidate["oof_sha256"])
    rows = oof.merge(dataset.frame[["symbol", "ts", *dataset.features]], on=["symbol", "ts"])
    x = rows[dataset.features].to_numpy(dtype=np.float32)

    prior, unreadable = earlier_trials(db, store, candidate, training_dataset["label_config"])
    if unreadable:
        context.log.warning(
            f"{len(unreadable)} earlier trials' returns unreadable, left out of the trials' "
            f"correlation (their Sharpe still counts): {'; '.join(unreadable)}"
        )
    cost = cost_bps_for(db, config)
    result = evaluate_predictions(rows, rows["proba"].to_numpy(), cost, config.band, prior)

    native = load_model(store, family, candidate)
    onnx = OnnxModel(store.get_bytes(candidate["onnx_uri"], candidate["onnx_sha256"]))
    parity = onnx_parity(family.predict_proba(native, x), onnx.predict_proba(x))
    latency = single_row_latency_us(onnx.predict_proba, x)
    result.ml.update(onnx_parity=parity, onnx_p50_us=latency["p50"], onnx_p99_us=latency["p99"])
    record_performance(
        db,
        model_version_id=candidate["id"],
        dataset_id=training_dataset["dataset_id"],
        split="walk_forward_oof",
        n_rows=result.n_rows,
        ml_metrics=result.ml,
        business_metrics=result.business,
        returns=store_returns(store, result.returns),
    )

    comparison, no_comparison = _compare_with_champion(
        context, db, store, family, candidate, trained_model, dataset, config, cost
    )
    table = _comparison_table(result, comparison)
    value = {
        "model_version_id": str(candidate["id"]),
        "roc_auc": result.ml["roc_auc"],
        "net_sharpe": result.business["net_sharpe"],
        "onnx_parity": parity,
        "champion_version_id": comparison["champion_version_id"] if comparison else None,
        # Why there is no comparison, when the reason is one the decision must state.
        "no_comparison": no_comparison,
    }
    return dg.Output(
        json_safe(value),
        metadata={
            "candidate_version": int(candidate["version"]),
            "evaluation_rows": result.n_rows,
            "roc_auc": result.ml["roc_auc"],
            "net_sharpe": result.business["net_sharpe"],
            "max_drawdown": result.business["max_drawdown"],
            "deflated_sharpe": result.business["deflated_sharpe"],
            "n_trials": result.business["n_trials"],
            "n_effective_trials": round(result.business["n_effective_trials"], 2),
            "unreadable_trial_returns": len(unreadable),
            "onnx_parity": parity,
            "onnx_single_row_p50_us": round(latency["p50"], 1),
            "candidate_vs_champion": dg.MetadataValue.md(table),
            "equity_curve": dg.MetadataValue.md(_equity_plot(result, comparison)),
            **({"no_comparison": no_comparison} if no_comparison else {}),
        },
    )


def earlier_trials(db, store, candidate: dict, label_config: dict) -> tuple[PriorTrials, list[str]]:
    """Every earlier trial's Sharpe; the returns of the latest MAX_CORRELATED_TRIALS whose
    files can be read, and why the others could not (a lost file costs the correlation
    estimate one trial, not the evaluation; the periodic artifact scan raises the alert)."""
    trials = prior_trials(db, str(candidate["id"]), label_config)
    kept = [t for t in trials if t["returns_uri"]][:MAX_CORRELATED_TRIALS]
    returns, unreadable = [], []
    for trial in kept:
        try:
            returns.append(load_returns(store, trial["returns_uri"], trial["returns_sha256"]))
        except ArtifactIntegrityError as exc:
            unreadable.append(str(exc))
    return PriorTrials(sharpes=[t["sharpe"] for t in trials], returns=returns), unreadable


def cost_bps_for(db: Database, config: EvaluationConfig) -> float:
    """The run's cost: its config, else the business gate row's, so one row sets both."""
    if config.cost_bps is not None:
        return config.cost_bps
    gate = load_gates(db).get("business_metrics") or {}
    return float((gate.get("config") or {}).get("cost_bps", 5.0))


def _compare_with_champion(
    context, db, store, family, candidate, trained_model, dataset, config, cost
) -> tuple[dict | None, str | None]:
    """The champion and the candidate's procedure on the bars after the champion's
    training, which trained_model replayed the procedure on; paired tests between them.
    Without a comparison: (None, why) when the decision must say why, else (None, None)."""
    planned = trained_model.get("champion_comparison")
    champion = current_champion(db, family.name)
    if champion is None or champion["id"] == candidate["id"]:
        context.log.info("no champion to compare with")
        return None, None
    # Read first: a champion whose files are lost can neither be compared nor served,
    # and that is said and alerted on whether or not it would have been comparable.
    try:
        model = load_model(store, family, champion)
        store.verify(champion["onnx_uri"], champion["onnx_sha256"])
    except ArtifactIntegrityError as exc:
        why = report_unreadable_champion(db, store, champion, exc)
        context.log.error(why)
        return None, why
    if planned is None or planned["champion_version_id"] != str(champion["id"]):
        context.log.warning(
            f"no predictions of the candidate's procedure after champion "
            f"v{champion['version']}'s training: nothing to compare on"
        )
        return None, None
    predicted = load_frame(store, planned["predictions_uri"], planned["predictions_sha256"])
    shared = predicted.merge(
        dataset.frame[["symbol", "ts", *dataset.features]], on=["symbol", "ts"]
    )
    since = config.compare_from_ts() if config.compare_from is not None else None
    shared = rows_to_judge(shared, since, lambda level, text: getattr(context.log, level)(text))
    if shared is None:
        return None, None
    x = shared[list(candidate["feature_names"])].to_numpy(dtype=np.float32)
    champion_proba = family.predict_proba(model, x)
    champ, cand, paired = compare_on_rows(shared, champion_proba, cost, config.band)
    cand.business["paired"] = {**paired, "refits": planned["refits"]}
    for version_id, evaluation in ((champion["id"], champ), (candidate["id"], cand)):
        record_performance(
            db,
            model_version_id=version_id,
            dataset_id=candidate["dataset_id"],
            split=comparison_split(champion["id"], candidate["id"]),
            n_rows=evaluation.n_rows,
            ml_metrics=evaluation.ml,
            business_metrics=evaluation.business,
        )
    return {
        "champion_version_id": str(champion["id"]),
        "champion_version": champion["version"],
        "champion": champ,
        "candidate": cand,
        "paired": paired,
    }, None


def _comparison_table(result, comparison) -> str:
    header = "| metric | candidate (all OOF rows) |"
    divider = "|---|---|"
    if comparison:
        header += (
            " candidate's procedure (shared bars) |"
            f" champion v{comparison['champion_version']} (shared bars) |"
        )
        divider += "---|---|"
    lines = [header, divider]
    for source, keys in (("ml", SHOWN_ML), ("business", SHOWN_BUSINESS)):
        for key in keys:
            line = f"| {key} | {getattr(result, source)[key]:.4f} |"
            if comparison:
                line += (
                    f" {getattr(comparison['candidate'], source)[key]:.4f} |"
                    f" {getattr(comparison['champion'], source)[key]:.4f} |"
                )
            lines.append(line)
    if comparison:
        paired = comparison["paired"]
        lines += [
            "",
            f"Paired tests on {paired['evidence_bars']} shared bars per symbol "
            "(positive z: the candidate is better)",
            "",
            "| test | method | estimate | z | p better | p worse |",
            "|---|---|---|---|---|---|",
        ]
        for name, test in paired["tests"].items():
            lines.append(
                f"| {name} | {test['method']} | {test['estimate']:+.4g} | {test['z']:+.2f} |"
                f" {test['p_better']:.4f} | {test['p_worse']:.4f} |"
            )
    return "\n".join(lines)


def _equity_plot(result, comparison) -> str:
    curves = [("candidate (OOF)", result.returns)]
    if comparison:
        curves.append(("champion (shared rows)", comparison["champion"].returns))
    equity = [(label, (1 + returns).cumprod()) for label, returns in curves]
    return equity_plot_markdown(equity, "equity, net of costs", "equity curve")
