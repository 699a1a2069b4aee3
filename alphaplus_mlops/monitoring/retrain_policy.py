"""Whether a trigger's evidence turns into a retrain: cooldown, budget, a run in flight.

Pure: the sensors gather the facts (the trigger row, its earlier requests for the family,
whether a train_model run of the family is queued or running) and record what this says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

BUDGET_PERIOD = timedelta(days=30)
DEFAULT_BUDGET = 4
DEFAULT_RETRAIN_WINDOW_BARS = 504
DEFAULT_MIN_WINDOW_BARS = 126


@dataclass(frozen=True)
class RetrainVerdict:
    request: bool
    reasons: tuple[str, ...]

    @property
    def outcome(self) -> str:
        return "requested" if self.request else "refused"


def retrain_verdict(
    *,
    trigger: dict,
    requested_before: list[datetime],
    run_in_flight: bool,
    now: datetime,
    why: str,
) -> RetrainVerdict:
    """``requested_before``: the trigger's earlier requests for the family within the
    budget period, newest first. Refused while a train_model run of the family is queued or
    running, within ``cooldown_seconds`` of the last request, or with the family's budget
    (config ``max_retrains_per_30_days``, default 4) spent."""
    name = trigger["name"]
    if run_in_flight:
        return RetrainVerdict(
            False,
            (f"{name}: {why}", "a train_model run of the family is already queued or running"),
        )
    cooldown = timedelta(seconds=int(trigger.get("cooldown_seconds") or 0))
    recent = [t for t in requested_before if now - t < BUDGET_PERIOD]
    if recent and now - recent[0] < cooldown:
        until = recent[0] + cooldown
        return RetrainVerdict(
            False,
            (
                f"{name}: {why}",
                f"cooldown: last request {recent[0]:%Y-%m-%d %H:%M}, "
                f"next allowed {until:%Y-%m-%d %H:%M}",
            ),
        )
    budget = int((trigger.get("config") or {}).get("max_retrains_per_30_days", DEFAULT_BUDGET))
    if len(recent) >= budget:
        return RetrainVerdict(
            False,
            (f"{name}: {why}", f"budget: {len(recent)} retrains in 30 days of {budget} allowed"),
        )
    return RetrainVerdict(
        True, (f"{name}: {why}", f"{len(recent) + 1} of {budget} retrains in 30 days")
    )


def retrain_window(trigger: dict) -> int:
    """The trigger's rolling training window in bars (config ``retrain_window_bars``)."""
    return int(
        (trigger.get("config") or {}).get("retrain_window_bars", DEFAULT_RETRAIN_WINDOW_BARS)
    )


def window_after_change(trigger: dict, bars_since_change: int | None) -> tuple[int, str]:
    """The training window after a detected change, and how to say it: from the change
    point (config ``retrain_from: change_point``) once ``min_window_bars`` (126) have passed
    since it, else the rolling ``retrain_window_bars``."""
    config = trigger.get("config") or {}
    rolling = retrain_window(trigger)
    if config.get("retrain_from", "rolling") == "change_point" and bars_since_change:
        if bars_since_change >= int(config.get("min_window_bars", DEFAULT_MIN_WINDOW_BARS)):
            return bars_since_change, f"the {bars_since_change} bars since the change"
        return rolling, (
            f"the last {rolling} bars (only {bars_since_change} since the change, fewer "
            f"than min_window_bars)"
        )
    return rolling, f"the last {rolling} bars"
