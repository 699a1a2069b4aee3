"""Sensors that retrain unattended on evidence: a drift check beyond the champion's
yardstick (drift_trigger_sensor). Each reads its rows in automated_retraining_triggers every
tick, records every request and refusal in automated_decision_making, and keys each run on
the trigger and the evidence, so one piece of evidence retrains once."""

from datetime import UTC, datetime

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.jobs import train_model_job
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.families import family_names
from alphaplus_mlops.monitoring.retrain_policy import BUDGET_PERIOD, retrain_verdict
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE, Database
from alphaplus_mlops.store.drift import latest_drift_check
from alphaplus_mlops.store.triggers import (
    decision_for_evidence,
    record_trigger_decision,
    requests_since,
    triggers_of_type,
)
from alphaplus_mlops.store.versions import current_champion

DEFAULT_RETRAIN_WINDOW_BARS = 504
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _in_flight(instance: dg.DagsterInstance, family: str) -> bool:
    return bool(
        instance.get_run_records(
            dg.RunsFilter(
                job_name=train_model_job.name,
                statuses=_IN_FLIGHT,
                tags={run_tags.PARTITION: family},
            ),
            limit=1,
        )
    )


@dg.sensor(
    name="drift_trigger_sensor",
    job=train_model_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a train_model run on a rolling window (the trigger's "
    "retrain_window_bars) when a family's latest drift check of its champion drifted "
    "beyond the yardstick; refuses within cooldown_seconds, beyond "
    "max_retrains_per_30_days, or while a run of the family is queued or running.",
)
def drift_trigger_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    try:
        return _drift_requests(context, postgres.db)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, no trigger evaluated: {exc}")


def _drift_requests(context: dg.SensorEvaluationContext, db: Database):
    triggers = triggers_of_type(db, "drift")
    if not triggers:
        return dg.SkipReason("no enabled drift trigger")
    now = datetime.now(UTC)
    requests, refused, requested_families = [], [], set()
    for family in family_names():
        check = latest_drift_check(db, family)
        champion = current_champion(db, family)
        if check is None or not check["drifted"] or champion is None:
            continue
        if str(check["model_version_id"]) != str(champion["id"]):
            continue  # evidence about a version that no longer serves
        evidence = f"drift_check:{check['id']}"
        why = (
            f"{family} v{champion['version']}: drift {check['dataset_drift_score']:.2f} beyond "
            f"its yardstick {check['threshold']:.2f} over {check['current_window']['start'][:10]}"
            f"..{check['current_window']['end'][:10]}"
        )
        for trigger in triggers:
            if decision_for_evidence(db, str(trigger["id"]), evidence) is not None:
                continue
            verdict = retrain_verdict(
                trigger=trigger,
                requested_before=requests_since(
                    db, str(trigger["id"]), family, now - BUDGET_PERIOD
                ),
                run_in_flight=family in requested_families or _in_flight(context.instance, family),
                now=now,
                why=why,
            )
            window = int(trigger["config"].get("retrain_window_bars", DEFAULT_RETRAIN_WINDOW_BARS))
            record_trigger_decision(
                db,
                trigger=trigger,
                family=family,
                version_id=str(champion["id"]),
                evidence=evidence,
                outcome=verdict.outcome,
                reasons=list(verdict.reasons),
                inputs={
                    "statistic": check["dataset_drift_score"],
                    "limit": check["threshold"],
                    "retrain_window_bars": window,
                },
            )
            if not verdict.request:
                refused.append(f"{family}: {verdict.reasons[-1]}")
                continue
            requested_families.add(family)
            requests.append(
                dg.RunRequest(
                    partition_key=family,
                    run_key=f"drift:{trigger['id']}:{check['id']}",
                    run_config={"ops": {"training_dataset": {"config": {"window_bars": window}}}},
                    tags={
                        run_tags.TRIGGER_TYPE: "drift",
                        run_tags.TRIGGER_ID: str(trigger["id"]),
                        run_tags.PRIORITY: str(trigger["priority"]),
                        run_tags.REASON: f"{why}; retrain on the last {window} bars",
                    },
                )
            )
    for line in refused:
        context.log.info(f"retrain refused: {line}")
    return requests or dg.SkipReason(
        "; ".join(refused) if refused else "no new drift beyond a champion's yardstick"
    )
