"""Quality gates as blocking asset checks. Thresholds are read from `quality_gates` at run
time, so changing a row changes the next run. Each judgement is stored with what it judged,
and a failing model gate marks its candidate rejected at once.

Blocking checks stop downstream steps only inside their own run; promotion therefore reads
these stored results again and refuses anything that has not passed them all.
"""

import dagster as dg
import numpy as np

from alphaplus_mlops import run_tags
from alphaplus_mlops.core.drift import historical_psi, mean_psi
from alphaplus_mlops.core.features import WARMUP_BARS, build_features
from alphaplus_mlops.core.gates import data_quality_gate, data_quality_measurements, judge
from alphaplus_mlops.defs.assets.evaluation import model_evaluation
from alphaplus_mlops.defs.assets.training import training_dataset
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.modeling.model_files import load_dataset
from alphaplus_mlops.store.bars import load_recent_bars
from alphaplus_mlops.store.gate_results import load_gates, record_gate_result
from alphaplus_mlops.store.handoffs import read_asset_value
from alphaplus_mlops.store.performance import evaluation_of
from alphaplus_mlops.store.promotion import reject_candidate
from alphaplus_mlops.store.versions import current_champion, version_trained_in_run


def _partition(context: dg.AssetCheckExecutionContext) -> str:
    return context.run.tags[run_tags.PARTITION]


def _result(judgement, gate: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=judgement.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=judgement.reason,
        metadata={
            "gate": gate["name"],
            "reason": judgement.reason,
            **{k: v for k, v in judgement.measured.items() if v is not None},
        },
    )


@dg.asset_check(
    asset=training_dataset,
    blocking=True,
    description="Data quality: minimum rows, no NaN/inf, class balance, no duplicate bars.",
)
def data_quality(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.AssetCheckResult:
    row = load_gates(postgres.db).get("data_quality")
    if row is None:
        return dg.AssetCheckResult(passed=True, description="gate data_quality is disabled")
    ref = read_asset_value(postgres.db, "training_dataset", _partition(context), context.run.run_id)
    dataset = load_dataset(artifacts.store, ref)
    gate = data_quality_gate(row)
    judgement = judge(gate, data_quality_measurements(dataset.frame, dataset.features))
    record_gate_result(
        postgres.db,
        judgement,
        gate_id=gate["id"],
        run_id=context.run.run_id,
        dataset_id=ref["dataset_id"],
    )
    return _result(judgement, gate)


def _model_gate(
    context, postgres: PostgresResource, gate_name: str, measure
) -> dg.AssetCheckResult:
    """Judge this run's candidate on one gate; reject it when the gate fails."""
    db = postgres.db
    candidate = version_trained_in_run(db, context.run.run_id)
    if candidate is None:
        raise dg.Failure("no candidate was trained in this run")
    gate = load_gates(db).get(gate_name)
    if gate is None:
        return dg.AssetCheckResult(passed=True, description=f"gate {gate_name} is disabled")
    champion = current_champion(db, candidate["family"])
    evaluation = evaluation_of(db, candidate, str(champion["id"]) if champion else None)
    judgement = judge(
        gate,
        measure(candidate, evaluation),
        evaluation.champion_on_shared,
        evaluation.candidate_on_shared,
    )
    record_gate_result(
        db, judgement, gate_id=gate["id"], run_id=context.run.run_id, version_id=candidate["id"]
    )
    if not judgement.passed:
        reject_candidate(db, candidate, judgement.reason, f"gate:{gate_name}", context.run.run_id)
    return _result(judgement, gate)


def _evaluation_gate(name: str, description: str) -> dg.AssetChecksDefinition:
    """A gate judged on the stored evaluation of this run's candidate."""

    @dg.asset_check(asset=model_evaluation, name=name, blocking=True, description=description)
    def check(context: dg.AssetCheckExecutionContext, postgres: PostgresResource):
        return _model_gate(context, postgres, name, lambda candidate, evaluation: evaluation.oof)

    return check


model_performance = _evaluation_gate(
    "model_performance", "ROC-AUC and log-loss floors; not worse than the champion."
)
business_metrics = _evaluation_gate(
    "business_metrics", "Net Sharpe, max drawdown and Deflated Sharpe; vs the champion."
)
serving = _evaluation_gate("serving", "ONNX parity with the native model and single-row latency.")


@dg.asset_check(
    asset=model_evaluation,
    blocking=True,
    description="The training data is not already stale: mean feature PSI of the most "
    "recent bars, relative to that of ordinary historical windows of the same length.",
)
def drift(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
):
    db = postgres.db
    ref = read_asset_value(db, "training_dataset", _partition(context), context.run.run_id)
    dataset = load_dataset(artifacts.store, ref)
    config = (load_gates(db).get("drift") or {}).get("config") or {}
    window = int(config.get("recent_window_bars", 63))

    def measure(candidate, evaluation):
        symbols = sorted(dataset.frame["symbol"].unique())
        bars = load_recent_bars(db, symbols, window + WARMUP_BARS + 1)
        recent = build_features(bars).groupby("symbol").tail(window)
        recent = recent.dropna(subset=dataset.features)
        current = mean_psi(dataset.frame, recent, dataset.features)
        history = historical_psi(
            dataset.frame, dataset.features, window, int(config.get("calibration_windows", 30))
        )
        if len(history) == 0:
            # Too short a training window to calibrate on (a rolling window after a break):
            # measure against the configured absolute yardstick instead.
            yardstick = float(config.get("uncalibrated_yardstick", 0.2))
            context.log.warning(
                f"{dataset.frame['ts'].nunique()} training bars cannot hold two {window}-bar "
                f"windows: recent mean PSI {current:.3f} judged against {yardstick}"
            )
        else:
            yardstick = float(np.quantile(history, float(config.get("calibration_quantile", 0.95))))
            context.log.info(
                f"recent mean PSI {current:.3f}; historical windows median "
                f"{np.median(history):.3f}, q95 {yardstick:.3f}"
            )
        return {
            "psi_vs_history": current / yardstick,
            "mean_feature_psi": current,
            "historical_psi_q": yardstick,
            "recent_rows": float(len(recent)),
        }

    return _model_gate(context, postgres, "drift", measure)


quality_gate_checks = [data_quality, model_performance, business_metrics, serving, drift]
