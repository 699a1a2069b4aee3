"""Schedules: the time-based retraining trigger (maximum model age) and the daily drift
check."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.jobs import drift_check_job, train_model_job
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.families import family_names
from alphaplus_mlops.store.clock import clock_now
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.training_jobs import last_training_at
from alphaplus_mlops.store.triggers import triggers_of_type
from alphaplus_mlops.store.versions import champion_since


def stale_families(db: Database, now: datetime, max_age: timedelta) -> dict[str, str]:
    """Families whose champion is older than ``max_age`` (or missing), with the reason, unless
    the family trained within ``max_age``: that training answered the schedule, promoted or
    not. (Counting the champion's age alone asked for a retrain every day until one was
    promoted: 1,703 retrains in five replays of bench/replay_value.py.)"""
    stale = {}
    for family in family_names():
        last = last_training_at(db, family)
        if last is not None and now - last <= max_age:
            continue
        tried = f"; last training {last:%Y-%m-%d}" if last is not None else ""
        champion = champion_since(db, family)
        if champion is None:
            stale[family] = f"no champion{tried}"
            continue
        since = champion["since"] or champion["created_at"]
        if now - since > max_age:
            stale[family] = f"champion v{champion['version']} serving since {since:%Y-%m-%d}{tried}"
    return stale


@dg.schedule(
    cron_schedule="0 6 * * *",
    job=train_model_job,
    execution_timezone="UTC",
    description="Daily: retrain every family whose champion is older than the time-based "
    "trigger's max_model_age_days (rows in automated_retraining_triggers).",
)
def model_age_schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource):
    db = postgres.db
    now = clock_now(db, context.scheduled_execution_time)
    triggers = triggers_of_type(db, "time")
    if not triggers:
        return dg.SkipReason("no enabled time-based trigger")
    requests = {}
    for trigger in triggers:
        max_age = timedelta(days=float(trigger["config"].get("max_model_age_days", 30)))
        for family, why in stale_families(db, now, max_age).items():
            requests.setdefault(
                family,
                dg.RunRequest(
                    partition_key=family,
                    run_key=f"time:{trigger['id']}:{family}:{now:%Y-%m-%d}",
                    tags={
                        run_tags.TRIGGER_TYPE: "time",
                        run_tags.TRIGGER_ID: str(trigger["id"]),
                        run_tags.PRIORITY: str(trigger["priority"]),
                        run_tags.REASON: f"{trigger['name']}: {why}",
                    },
                ),
            )
    return list(requests.values()) or dg.SkipReason("every champion is younger than its limit")


@dg.schedule(
    cron_schedule="30 6 * * *",
    job=drift_check_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: a drift check (drift_report) of every family's champion, for the "
    "drift trigger and the feature_drift alert.",
)
def drift_check_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time or datetime.now(UTC)).strftime("%Y-%m-%d")
    return [
        dg.RunRequest(partition_key=family, run_key=f"drift_check:{family}:{day}")
        for family in family_names()
    ]
