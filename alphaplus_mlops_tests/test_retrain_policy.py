"""When a trigger's evidence becomes a retrain."""

from datetime import UTC, datetime, timedelta

from alphaplus_mlops.monitoring.retrain_policy import (
    retrain_verdict,
    retrain_window,
    window_after_change,
)

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
TRIGGER = {
    "name": "drift_threshold",
    "cooldown_seconds": 5 * 86400,
    "config": {"max_retrains_per_30_days": 2},
}


def verdict(before, in_flight=False):
    return retrain_verdict(
        trigger=TRIGGER, requested_before=before, run_in_flight=in_flight, now=NOW, why="drift"
    )


def test_first_evidence_is_requested_and_says_how_much_budget_is_used():
    v = verdict([])
    assert v.request and v.outcome == "requested"
    assert v.reasons == ("drift_threshold: drift", "1 of 2 retrains in 30 days")


def test_a_run_in_flight_the_cooldown_and_the_budget_each_refuse_with_their_reason():
    assert verdict([], in_flight=True).reasons[1] == (
        "a train_model run of the family is already queued or running"
    )
    cooling = verdict([NOW - timedelta(days=2)])
    assert not cooling.request and cooling.reasons[1].startswith("cooldown: last request")
    assert "next allowed 2026-03-05 12:00" in cooling.reasons[1]
    spent = verdict([NOW - timedelta(days=6), NOW - timedelta(days=12)])
    assert not spent.request and spent.reasons[1] == "budget: 2 retrains in 30 days of 2 allowed"
    # Requests older than the budget period no longer count.
    assert verdict([NOW - timedelta(days=6), NOW - timedelta(days=31)]).request


def test_the_window_after_a_change_is_the_bars_since_it_once_there_are_enough():
    rolling = {"config": {"retrain_window_bars": 300}}
    assert window_after_change(rolling, 200) == (300, "the last 300 bars")
    assert retrain_window({"config": {}}) == 504
    config = {"retrain_from": "change_point", "min_window_bars": 126, "retrain_window_bars": 300}
    since = {"config": config}
    assert window_after_change(since, 130) == (130, "the 130 bars since the change")
    window, why = window_after_change(since, 125)
    assert window == 300 and "only 125 since the change, fewer than min_window_bars" in why
    assert window_after_change(since, None) == (300, "the last 300 bars")
