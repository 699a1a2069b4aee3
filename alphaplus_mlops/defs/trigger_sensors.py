"""Sensors that retrain unattended on evidence: a drift check beyond the champion's
yardstick (drift_trigger_sensor), an alarm of the detector watching the champion's live
performance (performance_trigger_sensor). Each reads its rows in
automated_retraining_triggers every tick, records every request and refusal in
automated_decision_making, and keys each run on the trigger and the evidence, so one piece
of evidence retrains once."""

from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
import pandas as pd

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.jobs import train_model_job
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families import family_names
from alphaplus_mlops.monitoring.retrain_policy import (
    BUDGET_PERIOD,
    retrain_verdict,
    retrain_window,
    window_after_change,
)
from alphaplus_mlops.retraining.performance_watch import watch_champion
from alphaplus_mlops.store.clock import clock_now
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE, Database
from alphaplus_mlops.store.drift import latest_drift_check
from alphaplus_mlops.store.triggers import (
    decision_for_evidence,
    last_decision_on_version,
    record_trigger_decision,
    requests_since,
    triggers_of_type,
)
from alphaplus_mlops.store.versions import current_champion

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
    "beyond the yardstick on a window sharing no bar with the last one it decided on; "
    "refuses within cooldown_seconds, beyond "
    "max_retrains_per_30_days, or while a run of the family is queued or running.",
)
def drift_trigger_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    try:
        return _drift_requests(context, postgres.db)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, no trigger evaluated: {exc}")


@dataclass
class _Tick:
    """One tick's requests and refusals; a family gets at most one request per tick."""

    context: dg.SensorEvaluationContext
    db: Database
    now: datetime
    requests: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    requested_families: set = field(default_factory=set)

    def consider(
        self,
        *,
        trigger: dict,
        family: str,
        champion: dict,
        evidence: str,
        why: str,
        inputs: dict,
        run_config: dict,
        reason_suffix: str,
    ) -> None:
        """Decide on one piece of evidence once: record the request or the refusal, and
        queue the run when requested."""
        if decision_for_evidence(self.db, str(trigger["id"]), evidence) is not None:
            return
        verdict = retrain_verdict(
            trigger=trigger,
            requested_before=requests_since(
                self.db, str(trigger["id"]), family, self.now - BUDGET_PERIOD
            ),
            run_in_flight=family in self.requested_families
            or _in_flight(self.context.instance, family),
            now=self.now,
            why=why,
        )
        record_trigger_decision(
            self.db,
            trigger=trigger,
            family=family,
            version_id=str(champion["id"]),
            evidence=evidence,
            outcome=verdict.outcome,
            reasons=list(verdict.reasons),
            inputs=inputs,
        )
        if not verdict.request:
            self.refused.append(f"{family}: {verdict.reasons[-1]}")
            return
        self.requested_families.add(family)
        self.requests.append(
            dg.RunRequest(
                partition_key=family,
                run_key=f"{trigger['trigger_type']}:{trigger['id']}:{evidence.split(':')[-1]}",
                run_config=run_config,
                tags={
                    run_tags.TRIGGER_TYPE: trigger["trigger_type"],
                    run_tags.TRIGGER_ID: str(trigger["id"]),
                    run_tags.PRIORITY: str(trigger["priority"]),
                    run_tags.REASON: f"{why}; {reason_suffix}",
                },
            )
        )

    def result(self, nothing: str):
        for line in self.refused:
            self.context.log.info(f"retrain refused: {line}")
        return self.requests or dg.SkipReason("; ".join(self.refused) if self.refused else nothing)


def _same_bars(db: Database, trigger: dict, champion: dict, check: dict) -> bool:
    """Whether the trigger already decided on a drifted window of this champion that shares
    bars with this check's: windows overlap from one check to the next, and the same
    drifted bars are one piece of evidence (bench/trigger_calibration.py)."""
    last = last_decision_on_version(db, str(trigger["id"]), str(champion["id"]))
    seen_until = (last or {}).get("inputs", {}).get("window_end")
    if seen_until is None:
        return False
    return pd.Timestamp(check["current_window"]["start"]) <= pd.Timestamp(seen_until)


def _drift_requests(context: dg.SensorEvaluationContext, db: Database):
    triggers = triggers_of_type(db, "drift")
    if not triggers:
        return dg.SkipReason("no enabled drift trigger")
    tick = _Tick(context, db, clock_now(db))
    for family in family_names():
        check = latest_drift_check(db, family)
        champion = current_champion(db, family)
        if check is None or not check["drifted"] or champion is None:
            continue
        if str(check["model_version_id"]) != str(champion["id"]):
            continue  # evidence about a version that no longer serves
        why = (
            f"{family} v{champion['version']}: drift {check['dataset_drift_score']:.3f} beyond "
            f"its yardstick {check['threshold']:.3f} over {check['current_window']['start'][:10]}"
            f"..{check['current_window']['end'][:10]}"
        )
        for trigger in triggers:
            if _same_bars(db, trigger, champion, check):
                continue
            window = retrain_window(trigger)
            tick.consider(
                trigger=trigger,
                family=family,
                champion=champion,
                evidence=f"drift_check:{check['id']}",
                why=why,
                inputs={
                    "statistic": check["dataset_drift_score"],
                    "limit": check["threshold"],
                    "window_start": check["current_window"]["start"],
                    "window_end": check["current_window"]["end"],
                    "retrain_window_bars": window,
                },
                run_config={"ops": {"training_dataset": {"config": {"window_bars": window}}}},
                reason_suffix=f"retrain on the last {window} bars",
            )
    return tick.result("no new drift beyond a champion's yardstick")


@dg.sensor(
    name="performance_trigger_sensor",
    job=train_model_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches each champion's realized live per-bar values (the trigger's metric) "
    "with a CUSUM frozen from its out-of-fold values; on an alarm requests a train_model run "
    "on a rolling window (retrain_window_bars) or, with retrain_from: change_point, on the "
    "bars since the detected change once min_window_bars have passed, judged against the "
    "champion on the bars "
    "since the detected change; refuses within cooldown_seconds, beyond "
    "max_retrains_per_30_days, or while a run of the family is queued or running.",
)
def performance_trigger_sensor(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
):
    try:
        return _performance_requests(context, postgres.db, artifacts.store)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, no trigger evaluated: {exc}")


def _performance_requests(context: dg.SensorEvaluationContext, db: Database, store):
    triggers = triggers_of_type(db, "performance")
    if not triggers:
        return dg.SkipReason("no enabled performance trigger")
    tick = _Tick(context, db, clock_now(db))
    watching = []
    for family in family_names():
        champion = current_champion(db, family)
        if champion is None:
            continue
        for trigger in triggers:
            watch = watch_champion(db, store, family, champion, trigger)
            if watch.note:
                context.log.warning(watch.note)
                tick.refused.append(f"{family}: {watch.note}")
                continue
            watching.append(
                f"{family} v{champion['version']} S={watch.statistic:.1f}/h={watch.detector.h:.1f} "
                f"over {watch.bars} bars"
            )
            if watch.alarm is None:
                continue
            alarm, change = watch.alarm, watch.change_bar_ts
            window, since = window_after_change(trigger, watch.bars_since_change)
            earlier = (
                f"; the fall began at {change:%Y-%m-%d}, before an earlier alarm"
                if change != alarm["change_bar_ts"]
                else ""
            )
            why = (
                f"{family} v{champion['version']}: live {alarm['metric']} fell from "
                f"{alarm['change_bar_ts']:%Y-%m-%d} (mean {alarm['mean_since_change']:+.5f} "
                f"per bar since; CUSUM {alarm['statistic']:.1f} > {alarm['threshold']:.1f} at "
                f"{alarm['alarm_bar_ts']:%Y-%m-%d}){earlier}"
            )
            tick.consider(
                trigger=trigger,
                family=family,
                champion=champion,
                evidence=f"performance_alarm:{alarm['id']}",
                why=why,
                inputs={
                    "statistic": alarm["statistic"],
                    "limit": alarm["threshold"],
                    "change_bar_ts": change.isoformat(),
                    "bars_since_change": watch.bars_since_change,
                    "retrain_window_bars": window,
                },
                run_config={
                    "ops": {
                        "training_dataset": {"config": {"window_bars": window}},
                        "model_evaluation": {"config": {"compare_from": change.isoformat()}},
                    }
                },
                reason_suffix=(
                    f"retrain on {since}, judged against the champion on the bars since "
                    f"{change:%Y-%m-%d}"
                ),
            )
    return tick.result("no performance alarm" + (f": {'; '.join(watching)}" if watching else ""))
