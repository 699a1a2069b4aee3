"""Business and statistical metrics against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from alphaplus_mlops.core.backtest import (
    backtest_signal,
    bars_per_year,
    business_metrics,
    positions_from_probability,
    strategy_returns,
)
from alphaplus_mlops.core.metrics import auc_p_value, classification_metrics
from alphaplus_mlops.core.stats import (
    deflated_sharpe,
    effective_trials,
    expected_max_sharpe,
    mean_pairwise_correlation,
    probabilistic_sharpe,
)


def test_strategy_returns_pay_the_previous_position_and_the_cost_of_changing_it():
    w = np.array([1.0, 1.0, -1.0, 0.0])
    r = np.array([0.05, 0.01, 0.02, -0.03])
    # bar 0: no position yet, enter long: -c*1
    # bar 1: long earns 0.01, no change
    # bar 2: long earns 0.02, flip to short: -c*2
    # bar 3: short earns +0.03, go flat: -c*1
    expected = [-0.001, 0.01, 0.02 - 0.002, 0.03 - 0.001]
    assert strategy_returns(w, r, cost=0.001) == pytest.approx(expected)


def test_business_metrics_on_a_small_fixed_series():
    r = np.array([0.01, -0.02, 0.03, -0.01, 0.02])
    w = np.array([1.0, 1.0, -1.0, -1.0, 1.0])
    m = business_metrics(r, w, periods_per_year=252)
    assert m.net_sharpe == pytest.approx(0.006 / np.std(r, ddof=1) * math.sqrt(252))
    assert m.profit_factor == pytest.approx(0.06 / 0.03)
    equity = np.cumprod(1 + r)  # 1.01, 0.9898, 1.019494, 1.00929906, 1.0294850...
    assert m.max_drawdown == pytest.approx(1 - equity[1] / equity[0])  # 0.02
    assert m.total_return == pytest.approx(equity[-1] - 1)
    # positions held during bars 1..4 (previous w): 1, 1, -1, -1 -> all active; 3 of 4 > 0?
    assert m.hit_rate == pytest.approx(2 / 4)
    assert m.turnover == pytest.approx((1 + 0 + 2 + 0 + 2) / 5)


def test_profit_factor_is_infinite_without_losses_and_drawdown_zero():
    m = business_metrics(np.array([0.01, 0.02]), np.array([1.0, 1.0]), 252)
    assert m.profit_factor == math.inf
    assert m.max_drawdown == 0.0


def test_bars_per_year_is_measured_from_the_timestamps():
    ts = pd.bdate_range("2020-01-01", "2021-01-01", tz="UTC")
    assert bars_per_year(ts) == pytest.approx((len(ts) - 1) / (366 / 365.25))


def test_positions_respect_the_band():
    p = np.array([0.2, 0.49, 0.5, 0.51, 0.8])
    assert positions_from_probability(p, band=0.02).tolist() == [-1, 0, 0, 0, 1]


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_positions_are_long_above_the_band_short_below_and_flat_otherwise(values, band):
    w = positions_from_probability(np.array(values, dtype=float), band=band)
    expected = [1.0 if p > 0.5 + band else -1.0 if p < 0.5 - band else 0.0 for p in values]
    assert w.dtype == np.float64
    assert w.shape == (len(values),)
    assert w.tolist() == expected


def test_backtest_of_a_perfect_long_signal_on_one_symbol():
    close = np.array([100.0, 110.0, 121.0, 133.1])
    frame = pd.DataFrame(
        {
            "symbol": "X",
            "ts": pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"),
            "close": close,
            "proba": 0.9,
        }
    )
    metrics, returns = backtest_signal(frame, cost_bps=10)
    assert returns.tolist() == pytest.approx([-0.001, 0.1, 0.1, 0.1])
    assert metrics.turnover == pytest.approx(0.25)


def test_classification_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p)
    assert m["accuracy"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))
    assert m["f1"] == pytest.approx(0.5)


def test_the_auc_p_value_is_calibrated_under_no_skill_and_small_for_real_skill():
    rng = np.random.default_rng(8)
    p_values = [auc_p_value(rng.integers(0, 2, 400), rng.random(400)) for _ in range(400)]
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08
    y = rng.integers(0, 2, 2000)
    skilled = 0.5 + 0.05 * (y - 0.5) + rng.normal(0, 0.1, 2000)
    assert auc_p_value(y, np.clip(skilled, 0, 1)) < 1e-6
    # The same AUC is weaker evidence on fewer rows.
    assert auc_p_value(y[:100], np.clip(skilled[:100], 0, 1)) > auc_p_value(
        y, np.clip(skilled, 0, 1)
    )


def test_probabilistic_sharpe_matches_the_formula():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 500)
    s = r.mean() / r.std(ddof=1)
    g3 = stats.skew(r, bias=False)
    g4 = stats.kurtosis(r, fisher=False, bias=False)
    z = s * np.sqrt(499) / np.sqrt(1 - g3 * s + (g4 - 1) / 4 * s**2)
    assert probabilistic_sharpe(r) == pytest.approx(stats.norm.cdf(z))
    assert probabilistic_sharpe(r, benchmark_sharpe=s) == pytest.approx(0.5)


def test_deflated_sharpe_falls_as_trials_accumulate():
    rng = np.random.default_rng(4)
    r = rng.normal(0.001, 0.01, 500)
    few = rng.normal(0, 0.02, 3)
    many = rng.normal(0, 0.02, 300)
    assert expected_max_sharpe(many) > expected_max_sharpe(few) > 0
    assert deflated_sharpe(r, many) < deflated_sharpe(r, few) <= probabilistic_sharpe(r)
    assert deflated_sharpe(r, np.array([0.05])) == pytest.approx(probabilistic_sharpe(r))


def test_two_trials_that_happen_to_agree_still_raise_the_benchmark():
    # Equal Sharpes have no spread, but each was estimated on 500 bars: under no skill they
    # scatter by 1/sqrt(500), and the best of two is expected above zero.
    same = np.array([0.03, 0.03])
    assert expected_max_sharpe(same) == 0.0
    floor = expected_max_sharpe(same, min_variance=1 / 500)
    assert floor > 0
    r = np.random.default_rng(5).normal(0.001, 0.01, 501)
    assert deflated_sharpe(r, same) == pytest.approx(probabilistic_sharpe(r, floor))


def test_correlated_trials_count_as_fewer_independent_ones():
    assert effective_trials(10, 0.0) == 10
    assert effective_trials(10, 1.0) == 1
    assert effective_trials(10, 0.5) == pytest.approx(5.5)
    assert effective_trials(10, -0.3) == 10  # negative mean correlation: no credit
    trials = np.random.default_rng(6).normal(0, 0.02, 10)
    assert expected_max_sharpe(trials, n_trials=5.5) < expected_max_sharpe(trials)


def test_mean_pairwise_correlation_uses_the_overlapping_times():
    ts = pd.bdate_range("2024-01-01", periods=100)
    base = pd.Series(np.random.default_rng(7).normal(size=100), index=ts)
    assert mean_pairwise_correlation([base, base, base]) == pytest.approx(1.0)
    assert mean_pairwise_correlation([base, -base]) == pytest.approx(-1.0)
    late = base.iloc[80:]  # 20 shared times: below the minimum overlap
    assert np.isnan(mean_pairwise_correlation([base.iloc[:50], late]))


def test_turnover_and_hit_rate_count_each_symbols_trades_not_the_net_exposure():
    ts = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    close = [100.0, 101.0, 100.0, 101.0]
    frame = pd.concat(
        [
            pd.DataFrame({"symbol": "A", "ts": ts, "close": close, "proba": [0.9, 0.1, 0.9, 0.1]}),
            pd.DataFrame({"symbol": "B", "ts": ts, "close": close, "proba": [0.1, 0.9, 0.1, 0.9]}),
        ]
    )
    metrics, returns = backtest_signal(frame, cost_bps=10)
    # Each symbol enters (|Δw| = 1), then flips every bar (|Δw| = 2): net exposure stays 0.
    assert metrics.turnover == pytest.approx((1 + 2 + 2 + 2) / 4)
    assert returns.iloc[0] == pytest.approx(-0.001)
    assert metrics.hit_rate == 0.0  # the two legs cancel, costs make every held bar a loss
