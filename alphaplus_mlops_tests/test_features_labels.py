"""Features never look ahead; labels carry their intervals and match hand computation."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.features import WARMUP_BARS, build_features, feature_names
from alphaplus_mlops.core.labels import LabelConfig, build_labels, symbol_labels
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market


@pytest.fixture(scope="module")
def bars():
    return simulate_market(["A", "B"], seed=1, config=SimulationConfig(n_bars=240)).bars


def test_features_have_at_least_twenty_columns_and_no_values_after_warmup_missing(bars):
    features = build_features(bars)
    names = feature_names()
    assert len(names) >= 20
    assert list(features.columns) == ["symbol", "ts", *names]
    after = features.groupby("symbol").apply(lambda g: g.iloc[WARMUP_BARS:], include_groups=False)
    assert not after[names].isna().any().any()


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(WARMUP_BARS, 230), seed=st.integers(0, 10_000))
def test_no_feature_at_t_changes_when_bars_after_t_change(bars, cut, seed):
    rng = np.random.default_rng(seed)
    perturbed = bars.copy()
    future = perturbed.groupby("symbol").cumcount() > cut
    scale = rng.uniform(0.5, 2.0, size=future.sum())
    for column in ("open", "high", "low", "close"):
        perturbed.loc[future, column] *= scale
    perturbed.loc[future, "volume"] *= rng.uniform(0.1, 10, size=future.sum())
    original = build_features(bars)
    changed = build_features(perturbed)
    past = original.groupby("symbol").cumcount() <= cut
    pd.testing.assert_frame_equal(original[past], changed[past])
    assert not original[~past].equals(changed[~past])  # the perturbation did reach the future


def frame(closes):
    n = len(closes)
    return pd.DataFrame(
        {
            "symbol": "X",
            "ts": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": 1.0,
        }
    )


def test_fixed_horizon_labels_and_intervals_by_hand():
    closes = [100.0, 101.0, 99.0, 102.0, 102.0]
    labels = symbol_labels(frame(closes), LabelConfig(horizon=2, threshold=0.0))
    assert labels["label"].tolist()[:3] == [0.0, 1.0, 1.0]  # 99<100, 102>101, 102>99
    assert labels["label"].isna().tolist() == [False, False, False, True, True]
    assert labels["t1"].iloc[0] == labels["t0"].iloc[2]
    assert labels["forward_return"].iloc[1] == pytest.approx(np.log(102 / 101))


def test_a_positive_threshold_needs_a_larger_move():
    closes = [100.0, 100.5, 103.0]
    labels = symbol_labels(frame(closes), LabelConfig(horizon=1, threshold=0.01))
    assert labels["label"].tolist()[:2] == [0.0, 1.0]


def test_triple_barrier_labels_the_first_barrier_touched():
    # Flat warm-up so the EWMA volatility is defined, then a jump up and a fall.
    rng = np.random.default_rng(0)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 30))))
    last = closes[-1]
    closes += [last * 1.001, last * 1.08] + [last * 0.80] * 4
    config = LabelConfig(method="triple_barrier", horizon=3, profit_take=1.0, stop_loss=1.0)
    labels = symbol_labels(frame(closes), config)
    t = 29  # the bar before the jump
    assert labels["label"].iloc[t] == 1.0
    assert labels["t1"].iloc[t] == labels["t0"].iloc[t + 2]  # decided by the jump bar
    assert labels["label"].iloc[t + 2] == 0.0  # from the peak, the fall hits the lower barrier
    assert labels["t1"].iloc[t + 2] == labels["t0"].iloc[t + 3]
    assert (labels["t1"].dropna() >= labels["t0"][labels["t1"].notna()]).all()


def test_labels_for_many_symbols_keep_each_symbol_separate(bars):
    labels = build_labels(bars, LabelConfig(horizon=5))
    assert labels.groupby("symbol")["label"].apply(lambda s: s.isna().sum()).tolist() == [5, 5]


def test_bad_label_configurations_are_refused():
    with pytest.raises(ValueError, match="horizon"):
        LabelConfig(horizon=0)
    with pytest.raises(ValueError, match="unknown label method"):
        LabelConfig(method="meta")
