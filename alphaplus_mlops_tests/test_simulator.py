"""The simulator: reproducible per seed, valid OHLC, and the planted break is really there."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.data.simulator import (
    SimulationConfig,
    planted_signal_sharpe,
    simulate_market,
)
from alphaplus_mlops.data.validation import validate_bars

from .conftest import STRONG_SIGNAL

SMALL = SimulationConfig(n_bars=600)


def test_same_seed_gives_the_same_bars_bit_for_bit():
    a = simulate_market(["S1", "S2"], seed=11, config=SMALL)
    b = simulate_market(["S1", "S2"], seed=11, config=SMALL)
    pd.testing.assert_frame_equal(a.bars, b.bars, check_exact=True)
    pd.testing.assert_frame_equal(a.truth, b.truth, check_exact=True)


def test_different_seeds_give_different_bars():
    a = simulate_market(["S1"], seed=11, config=SMALL)
    b = simulate_market(["S1"], seed=12, config=SMALL)
    assert not np.allclose(a.bars["close"], b.bars["close"])


def test_adding_a_symbol_does_not_change_the_others():
    alone = simulate_market(["S1"], seed=3, config=SMALL).bars
    together = simulate_market(["S0", "S1"], seed=3, config=SMALL).bars
    pd.testing.assert_frame_equal(
        alone, together[together.symbol == "S1"].reset_index(drop=True), check_exact=True
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_bars_are_valid_ohlc_for_any_seed(seed):
    market = simulate_market(["S1"], seed=seed, config=SimulationConfig(n_bars=300))
    clean = validate_bars(market.bars)
    assert len(clean) == 300
    assert (clean["high"] >= clean["low"]).all()


def test_volatility_after_the_break_is_clearly_higher_than_before():
    market = simulate_market(["S1", "S2", "S3"], seed=5)
    for symbol, bars in market.bars.groupby("symbol"):
        returns = np.log(bars["close"]).diff()
        after = bars["ts"] >= market.break_ts
        ratio = returns[after].std() / returns[~after].std()
        assert ratio > 1.4, f"{symbol}: vol ratio {ratio:.2f}"


def test_momentum_predicts_returns_before_the_break_and_reverses_after():
    strong = SimulationConfig(signal_strength=STRONG_SIGNAL)
    market = simulate_market(["S1", "S2"], seed=5, config=strong)
    for _, bars in market.bars.groupby("symbol"):
        returns = np.log(bars["close"]).diff()
        momentum = returns.rolling(5).sum().shift(1)  # only bars before t
        before = bars["ts"] < market.break_ts
        corr_before = momentum[before].corr(returns[before])
        corr_after = momentum[~before].corr(returns[~before])
        assert corr_before > 0.05, corr_before
        assert corr_after < -0.05, corr_after


def test_the_default_planted_signal_is_as_strong_as_real_daily_signals_get():
    symbols = [f"S{i}" for i in range(8)]
    sharpes = pd.concat(
        [planted_signal_sharpe(simulate_market(symbols, seed=seed)) for seed in range(3)]
    )
    assert 0.5 <= sharpes["before_break"].median() <= 1.0
    # Trading the truth is a gross Sharpe of 3-4 with the old, unrealistic strength.
    strong = simulate_market(symbols, seed=0, config=SimulationConfig(signal_strength=0.4))
    assert planted_signal_sharpe(strong)["before_break"].median() > 2.5


def test_the_planted_loading_flips_sign_at_the_break():
    market = simulate_market(["S1", "S2"], seed=5, config=SMALL)
    after = market.truth["ts"] >= market.break_ts
    assert (market.truth.loc[~after, "loading"] == 1.0).all()
    assert (market.truth.loc[after, "loading"] == -1.0).all()


def test_ground_truth_names_regimes_and_the_break():
    market = simulate_market(["S1"], seed=5, config=SMALL)
    assert set(market.truth["regime"].unique()) <= {"calm", "choppy", "crisis"}
    assert market.break_ts == market.bars["ts"].iloc[int(600 * SMALL.break_fraction)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_bars": 3},
        {"break_fraction": 1.0},
        {"garch_alpha": 0.5, "garch_beta": 0.6},
        {"student_t_dof": 2.0},
    ],
)
def test_impossible_configurations_are_refused(kwargs):
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)
