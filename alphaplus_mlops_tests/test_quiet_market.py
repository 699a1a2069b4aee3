"""On ordinary pre-break weeks the retrain triggers stay quiet, and after the break they
fire: the performance detector and the drift check as the sensors run them, on the
simulator, for a champion trained as the triggers retrain (a rolling 504-bar window).

Two years of weekly drift checks and every bar of the detector, on a few fixed seeds: a
trigger may raise a false alarm now and then (bench/trigger_calibration.py measures the
rates on 40 seeds), but over these seeds at most one per family per two years, as the
trigger's calibration promises; and each break is found within a year by at least one of
them."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.simulator import simulate_market
from alphaplus_mlops.families import get_family
from alphaplus_mlops.families.base import feature_importance
from alphaplus_mlops.modeling.assessment import evaluate_predictions
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset
from alphaplus_mlops.modeling.fitting import cross_validate, final_fit
from alphaplus_mlops.monitoring.change_detection import calibrate_detector
from alphaplus_mlops.monitoring.drift_yardstick import (
    RAW_VOLATILITY,
    check_latest_window,
    raw_volatility,
    yardstick,
)
from alphaplus_mlops.retraining.performance_watch import DEFAULTS

SEEDS = tuple(range(11, 23))
YEAR, WINDOW, CHECK_EVERY = 252, 504, 5


def between(dataset: Dataset, start, end) -> Dataset:
    keep = (dataset.frame["ts"] >= start) & (dataset.frame["ts"] < end)
    return Dataset(
        dataset.frame[keep].reset_index(drop=True), dataset.features, dataset.label_config
    )


def alarms_around_the_break(seed: int) -> dict:
    market = simulate_market([f"Q{i:02d}" for i in range(16)], seed=seed)
    full = build_dataset(market.bars, LabelConfig(horizon=1))
    full.frame[RAW_VOLATILITY] = (
        full.frame[["symbol", "ts"]]
        .merge(raw_volatility(market.bars), on=["symbol", "ts"], how="left")[RAW_VOLATILITY]
        .to_numpy()
    )
    times = pd.DatetimeIndex(full.frame["ts"].unique()).sort_values()
    brk = int(times.searchsorted(market.break_ts))
    train = between(full, times[brk - 2 * WINDOW], times[brk - WINDOW])
    live = between(full, times[brk - WINDOW], times[brk + YEAR])

    family = get_family("lightgbm")
    params = {"n_estimators": 60, "num_leaves": 7, "num_threads": 1}
    cv = cross_validate(family, train, params, WalkForward(n_splits=4, gap=1, min_train_size=50))
    offline = evaluate_predictions(cv.oof, cv.oof["proba"].to_numpy(), 5.0, 0.0).returns
    model = final_fit(family, train, params).model
    values = evaluate_predictions(live.frame, family.predict_proba(model, live.x), 5.0, 0.0).returns
    at_break = int(values.index.searchsorted(market.break_ts))

    detector = calibrate_detector(
        offline.to_numpy(),
        metric="net_return",
        shift_sd=DEFAULTS["shift_sd"],
        false_alarm_probability=DEFAULTS["false_alarm_probability"],
        horizon_bars=DEFAULTS["horizon_bars"],
        block_bars=DEFAULTS["block_bars"],
        seed=seed,
    )
    performance = [a.at for a in detector.alarms(values.to_numpy())]

    share = feature_importance(family, model, len(train.features))
    weights = {**dict(zip(train.features, share, strict=True)), RAW_VOLATILITY: 1 / len(share)}
    watched = [*train.features, RAW_VOLATILITY]
    stick = yardstick(train.frame, watched, 63, weights)
    drifted = []
    for end in range(63, len(values) + 1, CHECK_EVERY):
        current = live.frame[live.frame["ts"] <= values.index[end - 1]]
        check = check_latest_window(train.frame, current, watched, 63, stick.limit, weights)
        drifted.append((end - 1, check.drifted))
    # The drift trigger's rule: a drifted window sharing bars with the last alarm's is the
    # same evidence.
    alarms: list[int] = []
    for at, d in drifted:
        if d and (not alarms or at - alarms[-1] >= 63):
            alarms.append(at)
    return {
        "performance_before": sum(a < at_break for a in performance),
        "drift_before": sum(a < at_break for a in alarms),
        "found_after": any(a >= at_break for a in performance + alarms),
    }


@pytest.fixture(scope="module")
def seeds():
    return [alarms_around_the_break(seed) for seed in SEEDS]


def test_before_the_break_each_trigger_raises_at_most_one_false_alarm_per_two_years(seeds):
    assert np.mean([s["performance_before"] for s in seeds]) <= 1.0
    assert np.mean([s["drift_before"] for s in seeds]) <= 1.0


def test_after_the_break_the_triggers_find_it_within_a_year(seeds):
    assert all(s["found_after"] for s in seeds)
