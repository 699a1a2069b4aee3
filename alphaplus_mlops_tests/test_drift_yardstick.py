"""The drift yardstick: what a model's own training period says is ordinary drift."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.monitoring.column_drift import ColumnDrift, DatasetDrift, dataset_drift
from alphaplus_mlops.monitoring.drift_yardstick import (
    RAW_VOLATILITY,
    consecutive_windows,
    drift_weights,
    raw_volatility,
    weighted_severity,
    yardstick,
)


def distances(**scores: float) -> DatasetDrift:
    columns = tuple(
        ColumnDrift(c, "wasserstein", score, 0.1, score >= 0.1) for c, score in scores.items()
    )
    share = sum(c.drifted for c in columns) / len(columns)
    return DatasetDrift(columns, share, share >= 0.5)


def test_severity_is_one_at_the_threshold_for_distances_and_p_values():
    assert ColumnDrift("a", "wasserstein", 0.25, 0.1, True).severity == pytest.approx(2.5)
    assert ColumnDrift("a", "jensenshannon", 0.05, 0.1, False).severity == pytest.approx(0.5)
    assert ColumnDrift("a", "ks", 0.05, 0.05, True).severity == pytest.approx(1.0)
    assert ColumnDrift("a", "ks", 0.0025, 0.05, True).severity == pytest.approx(2.0)
    assert ColumnDrift("a", "z", 1.0, 0.05, False).severity == 0.0
    assert ColumnDrift("a", "chisquare", 0.0, 0.05, True).severity > 200  # p = 0 is finite


def test_the_statistic_weighs_each_features_severity_by_its_importance():
    drift = distances(a=0.3, b=0.1, c=0.05)  # severities 3, 1, 0.5
    assert weighted_severity(drift) == pytest.approx(4.5 / 3)
    assert weighted_severity(drift, {"a": 6.0, "b": 3.0, "c": 1.0}) == pytest.approx(2.15)
    assert weighted_severity(drift, {"a": 0.0, "b": 0.0, "c": 0.0}) == pytest.approx(4.5 / 3)
    assert weighted_severity(drift, {"b": 1.0}) == pytest.approx(1.0)  # only b counts


def test_raw_volatility_is_the_rolling_spread_of_each_symbols_log_returns():
    ts = pd.bdate_range("2020-01-01", periods=8, tz="UTC")
    closes = {"A": 100 * np.exp(np.r_[0, np.cumsum([0.01, -0.01] * 3 + [0.01])]), "B": [50.0] * 8}
    bars = pd.concat(
        pd.DataFrame({"symbol": s, "ts": ts, "close": c}) for s, c in closes.items()
    ).iloc[::-1]  # any order
    vol = raw_volatility(bars, window=4).set_index(["symbol", "ts"])[RAW_VOLATILITY]
    assert vol["A"].iloc[:4].isna().all()  # 4 returns needed: the first bar has none
    assert vol["A"].iloc[4] == pytest.approx(np.std([0.01, -0.01, 0.01, -0.01], ddof=1))
    assert vol["B"].iloc[-1] == 0.0


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
    assert len(stick.values) == 8 * 7 // 2  # every pair of 8 windows
    assert stick.limit == pytest.approx(1.1 * max(stick.values)) and stick.limit < 1.0
    assert stick.as_dict()["statistic"] == "importance-weighted mean drift severity"
    last = consecutive_windows(calm, 63)[-1]
    moved = frame(63, seed=2)
    moved["x"] += 0.5
    live = weighted_severity(dataset_drift(last, moved, ["x", "y"]), {"x": 2.0, "y": 1.0})
    assert live > 2 * stick.limit
    with pytest.raises(ValueError, match="holds 2 windows of 63 bars"):
        yardstick(frame(130), ["x"], 63)


def test_drift_weights_give_the_raw_volatility_the_average_features_weight():
    weights = drift_weights(["a", "b", "c", "d"], np.array([0.5, 0.3, 0.2, 0.0]))
    assert weights == {"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0, RAW_VOLATILITY: 0.25}
    assert drift_weights(["a"], None) is None
