"""Sensors that turn run outcomes into alerts and deliver alerts to their channels."""

from datetime import UTC, datetime

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.alerting.delivery import DEFAULT_BUDGET_SECONDS, deliver_due
from alphaplus_mlops.alerting.rules import check_stale_data, on_run_failure, on_run_success
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE


def _failure_text(context: dg.RunFailureSensorContext) -> str:
    """The first failed step's error (the user code's, under Dagster's wrappers), else the
    run's failure message; one line."""
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return f"step {event.step_key}: {error.message.strip().splitlines()[0]}"
    return (context.failure_event.message or "the run failed").strip().splitlines()[0]


@dg.run_failure_sensor(
    name="pipeline_failure_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Raises the pipeline_failure alert (one per job and partition, repeats "
    "counted) when a run of a job the rule's condition watches fails.",
)
def pipeline_failure_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource):
    run = context.dagster_run
    # Raised errors leave the cursor where it was: the failure is seen again next tick, so
    # a database outage delays the alert instead of losing it.
    alert = on_run_failure(
        postgres.db,
        job_name=run.job_name,
        run_id=run.run_id,
        partition=run.tags.get(run_tags.PARTITION),
        error=_failure_text(context),
        tags=dict(run.tags),
    )
    context.log.info(
        f"run {run.run_id} of {run.job_name} failed: "
        + (alert.sentence() if alert else "not watched by pipeline_failure")
    )


@dg.run_status_sensor(
    name="pipeline_recovery_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Resolves a job and partition's pipeline_failure alert when a later run of "
    "it succeeds.",
)
def pipeline_recovery_sensor(context: dg.RunStatusSensorContext, postgres: PostgresResource):
    run = context.dagster_run
    on_run_success(
        postgres.db,
        job_name=run.job_name,
        run_id=run.run_id,
        partition=run.tags.get(run_tags.PARTITION),
    )


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers raised and resolved alerts to the webhook channels in "
    "alert_channels: a bounded time per tick, each POST with the channel's timeout, failed "
    "attempts retried later with backoff and given up after max_attempts (recorded in "
    "alert_deliveries).",
)
def alert_delivery_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    try:
        report = deliver_due(postgres.db, budget_seconds=DEFAULT_BUDGET_SECONDS)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, deliveries wait: {exc}")
    for error in report.errors:
        context.log.warning(error)
    return dg.SkipReason(f"alert deliveries: {report.sentence()}")


@dg.sensor(
    name="stale_data_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Raises stale_market_data for a symbol whose bars stopped arriving (the "
    "market has had more than max_missed_bars bar times since its last bar) and, with "
    "max_age_hours set in the rule, for the market by the wall clock; resolves them when "
    "bars arrive.",
)
def stale_data_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    try:
        fired, resolved = check_stale_data(postgres.db, datetime.now(UTC))
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, freshness not checked: {exc}")
    for alert in fired:
        context.log.warning(f"stale market data: {alert.sentence()}")
    return dg.SkipReason(f"{len(fired)} stale, {resolved} resolved")
