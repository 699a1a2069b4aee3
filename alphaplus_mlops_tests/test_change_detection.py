"""CUSUM on per-bar values: exact on small inputs, calibrated on simulated ones."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaplus_mlops.monitoring.change_detection import cusum, run_lengths, threshold_for_arl


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


def gaussian(rng, n):
    return rng.standard_normal(n)


def test_a_calibrated_threshold_keeps_false_alarms_near_the_target_and_catches_a_shift():
    h = threshold_for_arl(gaussian, k=0.25, false_alarm_probability=0.1, horizon=504, runs=200)
    fresh = run_lengths(gaussian, k=0.25, h=h, runs=400, horizon=504, seed=99)
    assert np.mean(fresh <= 504) <= 0.16  # 0.1 targeted; 400 fresh runs scatter by ~0.015

    rng = np.random.default_rng(7)
    delays = []
    for _ in range(100):
        x = rng.standard_normal(300)
        x[100:] -= 0.5  # a fall of half a standard deviation per bar from bar 100
        alarm = cusum(x, k=0.25, h=h).alarm_at
        delays.append(np.inf if alarm is None else alarm - 100)
    assert np.median(delays) < 40
