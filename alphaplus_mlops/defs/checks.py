"""Quality gates as blocking asset checks. Thresholds are read from `quality_gates` at run
time, so changing a row changes the next run. Each judgement is stored with what it judged,
and a failing model gate marks its candidate rejected at once. The gates judge a candidate
on its own (absolute floors); how it compares with the champion is the deployment
decision's business. Drift is not a gate: it is a reason to retrain, never to reject.

Blocking checks stop downstream steps only inside their own run; promotion therefore reads
these stored results again and refuses anything that has not passed them all.
"""

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.core.gates import data_quality_gate, data_quality_measurements, judge
from alphaplus_mlops.defs.assets.evaluation import model_evaluation
from alphaplus_mlops.defs.assets.training import training_dataset
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.modeling.model_files import load_dataset
from alphaplus_mlops.store.gate_results import load_gates, record_gate_result
from alphaplus_mlops.store.handoffs import read_asset_value
from alphaplus_mlops.store.performance import evaluation_of
from alphaplus_mlops.store.promotion import reject_candidate
from alphaplus_mlops.store.versions import version_trained_in_run


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
    judgement = judge(gate, measure(candidate, evaluation_of(db, candidate, None)))
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


model_performance = _evaluation_gate("model_performance", "ROC-AUC and log-loss floors.")
business_metrics = _evaluation_gate(
    "business_metrics", "Net Sharpe, max drawdown and Deflated Sharpe floors."
)
serving = _evaluation_gate("serving", "ONNX parity with the native model and single-row latency.")


quality_gate_checks = [data_quality, model_performance, business_metrics, serving]
