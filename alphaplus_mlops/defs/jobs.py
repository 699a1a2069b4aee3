"""Jobs: loading market data, training a family end to end, the live loop, and rolling
back."""

import dagster as dg
from pydantic import Field

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.assets.deployment import champion_model, deployment_decision
from alphaplus_mlops.defs.assets.drift import drift_report
from alphaplus_mlops.defs.assets.evaluation import model_evaluation
from alphaplus_mlops.defs.assets.live import LIVE_LOOP
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.assets.training import trained_model, training_dataset
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families import family_names
from alphaplus_mlops.store.promotion import PromotionRefused, rollback

ingest_market_bars_job = dg.define_asset_job(
    "ingest_market_bars",
    selection=[market_bars],
    description="Load the configured market data sources into PostgreSQL.",
)

# On Kubernetes (deploy/helm) each run is a pod: a training's gets two cores (the boosting
# libraries use every core they see) and room for the dataset, the models and their ONNX
# copies. Inert under the other run launchers.
TRAINING_POD_CONFIG = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "2", "memory": "2Gi"},
            "limits": {"memory": "4Gi"},
        }
    }
}

train_model_job = dg.define_asset_job(
    "train_model",
    selection=[
        training_dataset,
        trained_model,
        model_evaluation,
        deployment_decision,
        champion_model,
    ],
    tags={run_tags.TRAINING: "true", run_tags.K8S_CONFIG: TRAINING_POD_CONFIG},
    description="One model family (the partition): dataset -> walk-forward CV and final fit "
    "-> evaluation -> blocking quality gates -> deployment decision -> promotion.",
)


live_loop_job = dg.define_asset_job(
    "live_loop",
    selection=LIVE_LOOP,
    description="One model family (the partition): score the bars stored since the last "
    "scored one (live_signals), realize the outcomes the new bars close "
    "(prediction_outcomes), recompute the live windows (live_performance), look at the "
    "running experiment (ab_evaluation) and the probation after a promotion "
    "(probation_review), and write the fleet's dashboard snapshot (ml_ops_dashboard). The "
    "bar-arrival sensor runs the same assets.",
)

drift_check_job = dg.define_asset_job(
    "drift_check",
    selection=[drift_report.key, dg.AssetKey("ml_ops_dashboard")],
    description="One model family (the partition): the champion's latest live window of "
    "features against its training, held to its yardstick (drift_report); what the drift "
    "trigger and the feature_drift alert read; then the dashboard snapshot (ml_ops_dashboard).",
)


class RollbackConfig(dg.Config):
    family: str = Field(description="The model family (the partition names them).")
    reason: str = Field(description="Why, for the ledger.")
    to_version: int | None = Field(
        default=None, description="Version to restore; default: the previous champion."
    )
    actor: str = Field(default="", description="Who; default: the run.")


@dg.op(description="Restore the previous known-good champion in one transaction.")
def rollback_champion(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> None:
    if config.family not in family_names():
        raise dg.Failure(f"unknown family {config.family!r}; choose from {family_names()}")
    try:
        entry = rollback(
            postgres.db,
            artifacts.store,
            config.family,
            actor=config.actor or f"dagster run {context.run.run_id}",
            reason=config.reason,
            to_version=config.to_version,
        )
    except PromotionRefused as exc:
        raise dg.Failure(str(exc)) from exc
    context.log.info(
        f"{entry.family}: v{entry.previous_version} -> v{entry.version} (ledger #{entry.seq})"
    )


@dg.job(description="Roll a family's champion back to the previous known-good version.")
def rollback_job():
    rollback_champion()
