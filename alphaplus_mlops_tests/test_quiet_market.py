"""On ordinary pre-break weeks the retrain triggers stay quiet, and after the break they
fire: the performance detector and the drift check as the sensors run them, on the
simulator, for a champion trained as the triggers retrain (a rolling 504-bar window).

Two years of weekly drift checks and every bar of the detector, on a few fixed seeds: a
trigger may raise a false alarm now and then (bench/trigger_calibration.py measures the
rates on 200 seeds), but over these seeds at most one per family per two years, as the
trigger's calibration promises; and each break is found within a year by at least one of
them."""

import numpy as np
import pytest

from alphaplus_mlops.families.base import feature_importance
from alphaplus_mlops.modeling.scenarios import champion_around_the_break
from alphaplus_mlops.monitoring.change_detection import calibrate_detector
from alphaplus_mlops.monitoring.drift_yardstick import (
    RAW_VOLATILITY,
    check_latest_window,
    drift_weights,
    yardstick,
)
from alphaplus_mlops.retraining.performance_watch import DEFAULTS

SEEDS = tuple(range(11, 23))
CHECK_EVERY, DRIFT_BARS = 5, 63


def alarms_around_the_break(seed: int) -> dict:
    s = champion_around_the_break(seed, [f"Q{i:02d}" for i in range(16)])
    detector = calibrate_detector(
        s.offline_returns.to_numpy(),
        metric="net_return",
        shift_sd=DEFAULTS["shift_sd"],
        false_alarm_probability=DEFAULTS["false_alarm_probability"],
        horizon_bars=DEFAULTS["horizon_bars"],
        block_bars=DEFAULTS["block_bars"],
        seed=seed,
    )
    performance = [a.at for a in detector.alarms(s.live_returns.to_numpy())]

    features = s.train.features
    weights = drift_weights(features, feature_importance(s.family, s.model, len(features)))
    watched = [*features, RAW_VOLATILITY]
    stick = yardstick(s.train.frame, watched, DRIFT_BARS, weights)
    bars = s.live_returns.index
    # The drift trigger's rule: a drifted window sharing bars with the last alarm's is the
    # same evidence.
    alarms: list[int] = []
    for end in range(DRIFT_BARS, len(bars) + 1, CHECK_EVERY):
        current = s.live.frame[s.live.frame["ts"] <= bars[end - 1]]
        check = check_latest_window(
            s.train.frame, current, watched, DRIFT_BARS, stick.limit, weights
        )
        if check.drifted and (not alarms or end - 1 - alarms[-1] >= DRIFT_BARS):
            alarms.append(end - 1)
    return {
        "performance_before": sum(a < s.at_break for a in performance),
        "drift_before": sum(a < s.at_break for a in alarms),
        "found_after": any(a >= s.at_break for a in performance + alarms),
    }


@pytest.fixture(scope="module")
def seeds():
    return [alarms_around_the_break(seed) for seed in SEEDS]


def test_before_the_break_each_trigger_raises_at_most_one_false_alarm_per_two_years(seeds):
    assert np.mean([s["performance_before"] for s in seeds]) <= 1.0
    assert np.mean([s["drift_before"] for s in seeds]) <= 1.0


def test_after_the_break_the_triggers_find_it_within_a_year(seeds):
    assert all(s["found_after"] for s in seeds)
