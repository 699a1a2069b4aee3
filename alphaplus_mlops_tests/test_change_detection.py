"""CUSUM on per-bar values: exact on small inputs, calibrated on simulated ones."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.monitoring.change_detection import (
    Detector,
    block_bootstrap,
    calibrate_detector,
    cusum,
    fall_began,
    largest_statistic,
    no_skill_value,
    per_bar_values,
)


def test_the_statistic_accumulates_losses_beyond_k_and_alarms_past_h():
    result = cusum(np.array([1.0, -1.0, -2.0, 0.5, -3.0, 2.0]), k=0.5, h=3.0)
    # steps (0 - x) - 0.5: -1.5, 0.5, 1.5, -1.0, 2.5, -2.5
    assert result.statistic.tolist() == [0.0, 0.5, 2.0, 1.0, 3.5, 1.0]
    assert result.alarm_at == 4
    assert result.change_at == 1  # S left 0 at index 1


def test_target_scale_and_gaps():
    result = cusum(np.array([0.01, np.nan, -0.03]), k=0.0, h=10, target=0.01, scale=0.02)
    assert result.statistic.tolist() == [0.0, 0.0, 2.0]
    assert result.alarm_at is None and result.change_at is None
    with pytest.raises(ValueError, match="scale must be a positive number"):
        cusum(np.zeros(3), k=0.1, h=1, scale=0)
    with pytest.raises(ValueError, match="k must be >= 0 and h > 0"):
        cusum(np.zeros(3), k=0.1, h=0)


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=50), st.floats(0, 2), st.floats(0.1, 5))
def test_the_statistic_is_never_negative_and_alarms_only_past_h(values, k, h):
    result = cusum(np.array(values), k=k, h=h)
    assert (result.statistic >= 0).all()
    if result.alarm_at is None:
        assert (result.statistic <= h).all()
    else:
        assert result.statistic[result.alarm_at] > h
        assert (result.statistic[: result.alarm_at] <= h).all()


def test_a_calibrated_threshold_keeps_false_alarms_near_the_target_and_catches_a_shift():
    # Offline values as many as a long out-of-fold history, resampled one by one.
    offline = np.random.default_rng(98).standard_normal(5000)
    detector = calibrate_detector(
        offline,
        metric="net_return",
        shift_sd=0.5,
        false_alarm_probability=0.1,
        horizon_bars=504,
        block_bars=1,
    )
    rng = np.random.default_rng(99)
    fresh = [bool(detector.alarms(detector.scale * rng.standard_normal(504))) for _ in range(400)]
    assert np.mean(fresh) <= 0.16  # 0.1 targeted; 400 fresh runs scatter by ~0.015

    delays = []
    for _ in range(100):
        x = rng.standard_normal(300)
        x[100:] -= 0.5  # a fall of half a standard deviation per bar from bar 100
        alarm = cusum(x, k=detector.k, h=detector.h, scale=detector.scale).alarm_at
        delays.append(np.inf if alarm is None else alarm - 100)
    assert np.median(delays) < 40


def test_per_bar_values_average_each_metric_over_the_bars_symbols():
    rows = pd.DataFrame(
        {
            "ts": [2, 1, 1, 2],
            "net_return": [0.01, -0.02, 0.04, 0.03],
            "proba": [0.8, 0.3, 0.6, 0.5],
            "label": [1, 1, 1, 0],
        }
    )
    assert per_bar_values(rows, "net_return").to_dict() == pytest.approx({1: 0.01, 2: 0.02})
    # p > 0.5 predicts class 1; p = 0.5 predicts 0
    assert per_bar_values(rows, "accuracy").to_dict() == {1: 0.5, 2: 1.0}
    loss = per_bar_values(rows, "log_loss")
    assert loss[1] == pytest.approx((np.log(0.3) + np.log(0.6)) / 2)
    assert loss[2] == pytest.approx((np.log(0.8) + np.log(0.5)) / 2)
    with pytest.raises(ValueError, match="unknown performance metric 'sharpe'"):
        per_bar_values(rows, "sharpe")


def test_f1_per_bar_is_twice_the_hits_over_forecast_and_actual_positives():
    rows = pd.DataFrame(
        {
            "ts": [1, 1, 1, 2, 2, 3, 3],
            "proba": [0.9, 0.8, 0.2, 0.7, 0.6, 0.1, 0.4],
            "label": [1, 0, 1, 1, 1, 0, 0],
        }
    )
    f1 = per_bar_values(rows, "f1")
    # bar 1: forecasts 1,1,0 labels 1,0,1 -> TP 1, 2+2 positives -> 0.5; bar 2: both right
    assert f1[1] == pytest.approx(0.5) and f1[2] == pytest.approx(1.0)
    assert np.isnan(f1[3])  # no positive forecast, no positive label: no F1 (skipped)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.floats(0.2, 0.8), st.integers(0, 2**16))
def test_the_no_skill_f1_is_what_forecasts_unrelated_to_the_labels_score(symbols, rate, seed):
    rng = np.random.default_rng(seed)
    bars = 2000
    rows = pd.DataFrame(
        {
            "ts": np.repeat(np.arange(bars), symbols),
            "proba": rng.random(bars * symbols),
            "label": (rng.random(bars * symbols) < rate).astype(int),
        }
    )
    no_skill = no_skill_value(rows, "f1", seed=seed)
    # These forecasts have no skill already: their own mean per-bar F1 is the value within
    # the noise of 2,000 bars (0.05 is over six standard deviations of the difference). The
    # pooled 2·π·q / (π + q) is not: a ratio per bar is biased.
    own = float(np.nanmean(per_bar_values(rows, "f1")))
    assert no_skill == pytest.approx(own, abs=0.05)
    # A model that knows the labels scores 1 on every bar it is scored on.
    perfect = rows.assign(proba=rows["label"].astype(float))
    assert np.nanmin(per_bar_values(perfect, "f1")) == 1.0
    assert no_skill_value(rows, "accuracy") == 0.5


def test_f1_needs_a_measured_no_skill_target():
    offline = np.random.default_rng(0).uniform(0.4, 0.9, size=100)
    with pytest.raises(ValueError, match="f1 has no fixed no-skill value"):
        calibrate_detector(
            offline,
            metric="f1",
            shift_sd=0.5,
            false_alarm_probability=0.1,
            horizon_bars=100,
            block_bars=5,
            runs=50,
        )
    detector = calibrate_detector(
        offline,
        metric="f1",
        target=0.45,
        shift_sd=0.5,
        false_alarm_probability=0.1,
        horizon_bars=100,
        block_bars=5,
        runs=50,
    )
    assert detector.target == 0.45


@given(st.lists(st.floats(-3, 3), min_size=3, max_size=40), st.floats(0, 1))
def test_largest_statistic_is_the_maximum_of_the_cusum(values, k):
    x = np.array(values)
    expected = max(0.0, cusum(x, k=k, h=1e9).statistic.max())
    assert largest_statistic(x[None, :], k)[0] == pytest.approx(expected)


def test_block_bootstrap_draws_consecutive_values_wrapping_around():
    rng = np.random.default_rng(1)
    paths = block_bootstrap(np.arange(10.0), runs=50, horizon=7, block=3, rng=rng)
    assert paths.shape == (50, 7)
    for path in paths:
        for block in (path[0:3], path[3:6]):
            assert ((np.diff(block) == 1) | (np.diff(block) == -9)).all()


def test_a_detector_is_frozen_at_the_no_skill_target_and_keeps_its_false_alarm_rate():
    rng = np.random.default_rng(3)
    offline = 0.01 * rng.standard_normal(400) + 0.002  # a skilled version, out of fold
    detector = calibrate_detector(
        offline,
        metric="net_return",
        shift_sd=0.5,
        false_alarm_probability=0.2,
        horizon_bars=252,
        block_bars=5,
    )
    assert detector.target == 0.0 and detector.k == 0.25
    assert detector.scale == pytest.approx(offline.std(ddof=1))
    assert Detector.from_dict(detector.as_dict()) == detector
    # No skill at all, the offline spread: about 20 % of 252-bar stretches alarm.
    no_skill = [
        bool(detector.alarms(detector.scale * rng.standard_normal(252))) for _ in range(400)
    ]
    assert 0.1 <= np.mean(no_skill) <= 0.3
    # Losing a standard deviation per bar is caught within weeks, near where it began.
    losing = np.r_[offline[:200], offline[:100] - 0.002 - detector.scale]
    alarm = detector.alarms(losing)[0]
    assert 200 <= alarm.at < 230 and 190 <= alarm.change_at <= alarm.at
    assert alarm.statistic > detector.h


def test_alarms_restart_the_statistic():
    detector = Detector(
        metric="net_return", target=0.0, scale=1.0, k=0.0, h=2.5, shift_sd=0.0,
        false_alarm_probability=0.1, horizon_bars=10, block_bars=1, offline_bars=30,
        offline_mean=0.0,
    )  # fmt: skip
    found = detector.alarms(np.array([-1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0]))
    assert [(a.at, a.change_at) for a in found] == [(2, 0), (6, 4)]
    assert detector.statistic(np.array([-1.0, 0.5])) == 0.5


def test_a_detector_refuses_too_little_or_constant_evidence():
    args = {"metric": "net_return", "shift_sd": 0.5, "false_alarm_probability": 0.2}
    with pytest.raises(ValueError, match="29 offline per-bar values; a detector needs at least 30"):
        calibrate_detector(np.ones(29), horizon_bars=10, block_bars=1, **args)
    with pytest.raises(ValueError, match="do not vary"):
        calibrate_detector(np.ones(40), horizon_bars=10, block_bars=1, **args)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        calibrate_detector(
            np.arange(40.0), horizon_bars=10, block_bars=1,
            **{**args, "false_alarm_probability": 1.0},
        )  # fmt: skip


def test_a_fall_began_where_the_alarms_that_continued_it_began():
    bars = pd.bdate_range("2020-01-01", periods=30, tz="UTC")
    one = [(bars[10], bars[4])]
    assert fall_began(one, bars) == bars[4]
    # The second alarm's change point is the bar after the first alarm: the statistic never
    # went back to 0 after its restart, so it is the same fall; so is the third.
    chained = [(bars[10], bars[4]), (bars[15], bars[11]), (bars[20], bars[16])]
    assert fall_began(chained, bars) == bars[4]
    # A change point later than that: the model recovered in between, a new fall began.
    recovered = [(bars[10], bars[4]), (bars[25], bars[18])]
    assert fall_began(recovered, bars) == bars[18]
    broken = [(bars[10], bars[4]), (bars[15], bars[13]), (bars[20], bars[16])]
    assert fall_began(broken, bars) == bars[13]
