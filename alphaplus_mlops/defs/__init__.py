"""The Dagster shell: assets, jobs and resources, built from the environment."""

from __future__ import annotations

import dagster as dg

from alphaplus_mlops.defs.alert_sensors import (
    alert_delivery_sensor,
    pipeline_failure_sensor,
    pipeline_recovery_sensor,
    stale_data_sensor,
)
from alphaplus_mlops.defs.artifact_scan import artifact_scan_job, artifact_scan_schedule
from alphaplus_mlops.defs.assets.deployment import champion_model, deployment_decision
from alphaplus_mlops.defs.assets.drift import drift_report
from alphaplus_mlops.defs.assets.evaluation import model_evaluation
from alphaplus_mlops.defs.assets.experiments import ab_evaluation
from alphaplus_mlops.defs.assets.live import live_signals, live_signals_sensor
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.assets.monitoring import live_performance, prediction_outcomes
from alphaplus_mlops.defs.assets.probation import probation_review
from alphaplus_mlops.defs.assets.reports import (
    ml_ops_dashboard,
    ml_ops_report,
    ml_ops_report_job,
    ml_ops_report_schedule,
)
from alphaplus_mlops.defs.assets.training import trained_model, training_dataset
from alphaplus_mlops.defs.checks import quality_gate_checks
from alphaplus_mlops.defs.jobs import (
    drift_check_job,
    ingest_market_bars_job,
    live_loop_job,
    rollback_job,
    train_model_job,
)
from alphaplus_mlops.defs.resources import (
    ArtifactStoreResource,
    MarketDataResource,
    PostgresResource,
    postgres_from_settings,
    postgres_json_io_manager,
)
from alphaplus_mlops.defs.schedules import drift_check_schedule, model_age_schedule
from alphaplus_mlops.defs.sensors import run_mirror_sensor
from alphaplus_mlops.defs.trigger_sensors import drift_trigger_sensor, performance_trigger_sensor
from alphaplus_mlops.defs.upkeep import build_training_reaper, prediction_months
from alphaplus_mlops.settings import Settings


def build_resources(settings: Settings, postgres: PostgresResource | None = None) -> dict:
    postgres = postgres or postgres_from_settings(settings)
    return {
        "postgres": postgres,
        "artifacts": ArtifactStoreResource(location=settings.artifact_location),
        "market_data": MarketDataResource.from_settings(settings),
        "handoff_io_manager": postgres_json_io_manager,
    }


def build_definitions(
    settings: Settings | None = None, resources: dict | None = None
) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[
            market_bars,
            training_dataset,
            trained_model,
            model_evaluation,
            deployment_decision,
            champion_model,
            live_signals,
            prediction_outcomes,
            live_performance,
            ab_evaluation,
            probation_review,
            drift_report,
            ml_ops_dashboard,
            ml_ops_report,
        ],
        asset_checks=quality_gate_checks,
        jobs=[
            ingest_market_bars_job,
            train_model_job,
            live_loop_job,
            drift_check_job,
            rollback_job,
            artifact_scan_job,
            ml_ops_report_job,
        ],
        schedules=[
            model_age_schedule,
            drift_check_schedule,
            artifact_scan_schedule,
            ml_ops_report_schedule,
        ],
        sensors=[
            run_mirror_sensor,
            build_training_reaper(settings),
            prediction_months,
            live_signals_sensor,
            pipeline_failure_sensor,
            pipeline_recovery_sensor,
            alert_delivery_sensor,
            stale_data_sensor,
            drift_trigger_sensor,
            performance_trigger_sensor,
        ],
        resources=resources or build_resources(settings),
        executor=build_executor(settings),
    )


def build_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The setting's executor for every job (None: Dagster's default, multiprocess)."""
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "celery":
        from alphaplus_mlops.distributed.celery_config import executor_config
        from alphaplus_mlops.distributed.executor import watched_celery_executor

        return watched_celery_executor.configured(executor_config(settings))
    return None
