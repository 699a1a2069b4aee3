"""The default alert rules evaluated where their evidence appears.

* ``pipeline_failure``: a run of a job the rule watches failed (run-failure sensor); a later
  successful run of the same job and partition resolves it.
* ``system_resources``: a training run's peak RSS met the rule's condition (the training
  job's bookkeeping, when the run ends); a later run of the family under it resolves it.
* ``live_performance_decay``: a champion's complete live window (``window_bars``) met the
  rule's condition on its metric (live_performance); a window that no longer does, or the
  version leaving the champion role, resolves it.
* ``stale_market_data``: the market has had more than ``max_missed_bars`` bar times since
  a symbol's last bar, or (``max_age_hours`` set) the market's newest bar is
  that old by the wall clock (stale data sensor); bars arriving again resolve it.
* ``feature_drift``: the champion's latest live window drifted beyond its yardstick
  (``drift_ratio`` = statistic / limit meets the condition; drift_report); a later check
  within it, or the version leaving the champion role, resolves it.

Each evaluator reads the rule row every time: changing the condition or disabling the rule
in the database takes effect at the next evaluation.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg

from alphaplus_mlops.core.live_metrics import WindowResult, window_label
from alphaplus_mlops.monitoring.alert_conditions import (
    condition_holds,
    condition_sentence,
    watches_job,
)
from alphaplus_mlops.monitoring.freshness import stale_data
from alphaplus_mlops.store.alerts import (
    FiredAlert,
    alert_rule,
    fire_alert,
    resolve_alert,
    resolve_cleared,
)
from alphaplus_mlops.store.bars import symbol_freshness
from alphaplus_mlops.store.db import Database

log = logging.getLogger(__name__)

PIPELINE_FAILURE = "pipeline_failure"
SYSTEM_RESOURCES = "system_resources"
LIVE_PERFORMANCE_DECAY = "live_performance_decay"
STALE_MARKET_DATA = "stale_market_data"
FEATURE_DRIFT = "feature_drift"


def run_subject(job_name: str, partition: str | None) -> str:
    return f"job {job_name}" + (f" [{partition}]" if partition else "")


def on_run_failure(
    db: Database,
    *,
    job_name: str,
    run_id: str,
    partition: str | None,
    error: str,
    tags: dict | None = None,
) -> FiredAlert | None:
    """Raise (or repeat) the pipeline_failure alert of the run's job and partition."""
    rule = alert_rule(db, PIPELINE_FAILURE)
    if rule is None or not watches_job(rule["condition"] or {}, job_name):
        return None
    tags = tags or {}
    where = f" for {partition}" if partition else ""
    return fire_alert(
        db,
        PIPELINE_FAILURE,
        f"{job_name} run {run_id[:8]}{where} failed: {error}",
        {
            "run_id": run_id,
            "job": job_name,
            "partition": partition,
            "error": error,
            "trigger_type": tags.get("alphaplus/trigger_type"),
            "reason": tags.get("alphaplus/reason"),
        },
        subject=run_subject(job_name, partition),
    )


def on_run_success(db: Database, *, job_name: str, run_id: str, partition: str | None) -> bool:
    """Resolve the job and partition's pipeline_failure alert, if one is unresolved."""
    return resolve_alert(
        db,
        PIPELINE_FAILURE,
        run_subject(job_name, partition),
        f"run {run_id[:8]} of {job_name} succeeded",
    )


def check_training_memory(
    conn_or_db: Database | psycopg.Connection, *, family: str, run_id: str, peak_rss: int
) -> FiredAlert | None:
    """Raise system_resources when the run's peak RSS meets the rule, else resolve the
    family's alert. None when the rule is missing or disabled or nothing fired."""
    rule = alert_rule(conn_or_db, SYSTEM_RESOURCES)
    if rule is None or not rule["enabled"]:
        return None
    condition = rule["condition"] or {}
    subject = f"training {family}"
    held = condition_holds(condition, peak_rss)
    if held:
        return fire_alert(
            conn_or_db,
            SYSTEM_RESOURCES,
            f"training run {run_id[:8]} of {family} peaked at {peak_rss / 2**30:.2f} GiB "
            f"({condition_sentence(condition)} bytes)",
            {"run_id": run_id, "family": family, "peak_rss_bytes": peak_rss},
            subject=subject,
        )
    if held is False:
        resolve_alert(
            conn_or_db,
            SYSTEM_RESOURCES,
            subject,
            f"training run {run_id[:8]} of {family} peaked at {peak_rss / 2**30:.2f} GiB",
        )
    return None


def check_live_decay(
    db: Database,
    *,
    family: str,
    champion: tuple[str, int] | None,
    windows: list[WindowResult],
) -> FiredAlert | None:
    """Judge the champion's live windows (``champion`` = (version id, version)) against
    live_performance_decay; resolve the family's alerts about any other version."""
    rule = alert_rule(db, LIVE_PERFORMANCE_DECAY)
    if rule is None or not rule["enabled"]:
        return None
    condition = rule["condition"] or {}
    prefix = f"{family} v"
    if champion is None:
        resolve_cleared(db, LIVE_PERFORMANCE_DECAY, set(), "no champion serves", prefix)
        return None
    version_id, version = champion
    subject = f"{family} v{version}"
    resolve_cleared(db, LIVE_PERFORMANCE_DECAY, {subject}, "no longer the champion", prefix)
    label = window_label(int(condition.get("window_bars", 63)))
    window = next((w for w in windows if w.label == label), None)
    if window is None or not window.metrics.get("complete"):
        return None  # too few realized bars to judge yet
    metric = condition.get("metric", "net_sharpe")
    value = window.metrics.get(metric)
    held = condition_holds(condition, value)
    if held:
        return fire_alert(
            db,
            LIVE_PERFORMANCE_DECAY,
            f"{family} v{version} (champion): live {metric} {value:.3g} over the last {label} "
            f"({condition_sentence(condition)}), {window.window_start:%Y-%m-%d} to "
            f"{window.window_end:%Y-%m-%d}",
            {
                "family": family,
                "version": version,
                "model_version_id": version_id,
                "window": label,
                "metric": metric,
                "value": value,
                "window_start": window.window_start.isoformat(),
                "window_end": window.window_end.isoformat(),
            },
            subject=subject,
        )
    if held is False:
        resolve_alert(
            db,
            LIVE_PERFORMANCE_DECAY,
            subject,
            f"live {metric} {value:.3g} over the last {label} no longer meets "
            f"{condition_sentence(condition)}",
        )
    return None


def check_stale_data(db: Database, now: datetime) -> tuple[list[FiredAlert], int]:
    """Raise stale_market_data for each symbol whose bars stopped (and for the market by
    the wall clock, when the rule sets ``max_age_hours``); resolve the rest. Returns the
    alerts raised or repeated and how many were resolved."""
    rule = alert_rule(db, STALE_MARKET_DATA)
    if rule is None or not rule["enabled"]:
        return [], 0
    condition = rule["condition"] or {}
    findings = stale_data(
        symbol_freshness(db),
        int(condition.get("max_missed_bars", 3)),
        condition.get("max_age_hours"),
        now,
    )
    fired = [
        alert
        for f in findings
        if (alert := fire_alert(db, STALE_MARKET_DATA, f.message, f.details, subject=f.subject))
    ]
    resolved = resolve_cleared(
        db, STALE_MARKET_DATA, {f.subject for f in findings}, "bars are arriving again"
    )
    return fired, resolved


def check_feature_drift(
    db: Database, *, family: str, version: int, ratio: float, message: str, details: dict
) -> FiredAlert | None:
    """Raise feature_drift when the drift ratio (statistic / the version's yardstick limit)
    meets the rule, else resolve the family's alert about that version."""
    rule = alert_rule(db, FEATURE_DRIFT)
    if rule is None or not rule["enabled"]:
        return None
    condition = rule["condition"] or {}
    subject = f"{family} v{version}"
    resolve_cleared(db, FEATURE_DRIFT, {subject}, "no longer the champion", f"{family} v")
    held = condition_holds(condition, ratio)
    if held:
        return fire_alert(db, FEATURE_DRIFT, message, details, subject=subject)
    if held is False:
        resolve_alert(db, FEATURE_DRIFT, subject, f"drift ratio {ratio:.2f}: within the yardstick")
    return None
