"""The drift yardstick: what a model's own training period says is ordinary drift."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.monitoring.column_drift import ColumnDrift, DatasetDrift, dataset_drift
from alphaplus_mlops.monitoring.drift_yardstick import (
    consecutive_windows,
    weighted_drift,
    yardstick,
)


def verdicts(**drifted: bool) -> DatasetDrift:
    columns = tuple(ColumnDrift(c, "wasserstein", 0.0, 0.1, d) for c, d in drifted.items())
    share = sum(drifted.values()) / len(drifted)
    return DatasetDrift(columns, share, share >= 0.5)


def test_the_statistic_weighs_each_drifted_feature_by_its_importance():
    drift = verdicts(a=True, b=False, c=False)
    assert weighted_drift(drift) == pytest.approx(1 / 3)
    assert weighted_drift(drift, {"a": 6.0, "b": 3.0, "c": 1.0}) == pytest.approx(0.6)
    assert weighted_drift(drift, {"a": 0.0, "b": 0.0, "c": 0.0}) == pytest.approx(1 / 3)
    assert weighted_drift(drift, {"b": 1.0}) == 0.0  # only b counts, and b held


def frame(n_bars: int, symbols: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.bdate_range("2012-01-02", periods=n_bars, tz="UTC")
    return pd.DataFrame(
        {
            "ts": np.repeat(ts, symbols),
            "x": rng.normal(size=n_bars * symbols),
            "y": rng.normal(size=n_bars * symbols),
        }
    )


def test_windows_do_not_overlap_end_at_the_last_bar_and_drop_an_incomplete_oldest():
    windows = consecutive_windows(frame(130), 63)
    assert len(windows) == 2
    assert [w["ts"].nunique() for w in windows] == [63, 63]
    assert windows[1]["ts"].max() == frame(130)["ts"].max()
    assert windows[0]["ts"].max() < windows[1]["ts"].min()
    with pytest.raises(ValueError, match="at least one bar"):
        consecutive_windows(frame(10), 0)


def test_a_stationary_period_has_a_low_limit_and_a_shifted_window_exceeds_it():
    calm = frame(63 * 8, seed=1)
    stick = yardstick(calm, ["x", "y"], 63, {"x": 2.0, "y": 1.0})
    assert len(stick.values) == 8 * 7 // 2 and stick.limit <= 1 / 3  # every pair of 8 windows
    assert stick.as_dict()["statistic"] == "importance-weighted share of drifted features"
    last = consecutive_windows(calm, 63)[-1]
    moved = frame(63, seed=2)
    moved["x"] += 0.5
    live = weighted_drift(dataset_drift(last, moved, ["x", "y"]), {"x": 2.0, "y": 1.0})
    assert live == pytest.approx(2 / 3) and live > stick.limit
    with pytest.raises(ValueError, match="holds 2 windows of 63 bars"):
        yardstick(frame(130), ["x"], 63)
