"""Live outcomes and rolling live metrics on hand-made data: exact values."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.labels import LabelConfig, build_labels
from alphaplus_mlops.core.live_metrics import realized_outcomes, rolling_windows, window_metrics

DAYS = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")


def bars(closes, symbol="A", days=DAYS):
    return pd.DataFrame({"symbol": symbol, "ts": days[: len(closes)], "close": closes})


def predictions(signals, symbol="A", days=DAYS):
    rows = [
        {"model_version_id": "v1", "role": "champion", "symbol": symbol, "bar_ts": ts, "signal": s}
        for ts, s in zip(days, signals, strict=True)
        if s is not None
    ]
    return pd.DataFrame(rows)


def test_outcomes_are_the_label_rules_and_the_backtests_net_returns():
    config = LabelConfig(method="fixed_horizon", horizon=2, threshold=0.0)
    out = realized_outcomes(
        predictions([1, -1, -1, 1, 1]), bars([100.0, 101.0, 99.0, 102.0, 103.0]), config, 10.0
    )
    # Bars 3 and 4 have no bar two later: their label interval has not ended.
    assert list(out["bar_ts"]) == list(DAYS[:3])
    assert list(out["realized_label"]) == [0, 1, 1]
    assert list(out["realized_t1"]) == list(DAYS[2:5])
    assert out["realized_return"].tolist() == pytest.approx(
        [math.log(99 / 100), math.log(102 / 101), math.log(103 / 99)], abs=1e-15
    )
    assert out["realized_net_return"].tolist() == pytest.approx(
        [0.01 - 0.001, 2 / 101 - 0.002, -3 / 99], abs=1e-15
    )


def test_a_missing_answer_closes_the_position_and_reopening_pays_the_cost():
    config = LabelConfig(horizon=1)
    out = realized_outcomes(
        predictions([1, None, -1, 1, None]), bars([100.0, 101.0, 99.0, 102.0, 103.0]), config, 10.0
    )
    assert list(out["bar_ts"]) == [DAYS[0], DAYS[2], DAYS[3]]
    assert out["realized_net_return"].tolist() == pytest.approx(
        [0.01 - 0.001, -3 / 99 - 0.001, 103 / 102 - 1 - 0.002], abs=1e-15
    )


def test_no_position_is_carried_across_a_gap_in_the_bars():
    days = pd.DatetimeIndex(
        ["2024-01-01", "2024-01-02", "2024-03-01", "2024-03-02", "2024-03-03"], tz="UTC"
    )
    out = realized_outcomes(
        predictions([1, 1, 1, 1, 1], days=days),
        bars([100.0, 101.0, 150.0, 151.5, 150.0], days=days),
        LabelConfig(horizon=1),
        10.0,
    )
    # Bar 1 closes before the gap (pays to close), bar 2 reopens (pays again).
    assert out["realized_net_return"].tolist() == pytest.approx(
        [0.01 - 0.001, -0.001, 0.01 - 0.001, 150 / 151.5 - 1], abs=1e-15
    )


def test_duplicate_answers_for_one_bar_count_once_and_labels_match_build_labels():
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, 120)))
    days = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    config = LabelConfig(method="triple_barrier", horizon=5)
    frame = bars(closes, days=days)
    preds = predictions([1] * 120, days=days)
    out = realized_outcomes(pd.concat([preds, preds]), frame, config, 5.0)
    expected = build_labels(frame, config).dropna(subset=["label"])
    assert len(out) == len(expected)
    assert out["realized_label"].tolist() == expected["label"].astype(int).tolist()
    assert list(out["realized_t1"]) == list(expected["t1"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-0.05, 0.05), min_size=3, max_size=29),  # one close more than steps
    st.lists(st.sampled_from([-1, 0, 1]), min_size=30, max_size=30),
    st.floats(0, 50),
)
def test_net_returns_sum_to_the_backtest_of_the_same_positions(steps, signals, cost_bps):
    closes = 100 * np.exp(np.cumsum([0.0, *steps]))
    days = pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC")
    signals = signals[: len(closes)]
    out = realized_outcomes(
        predictions(signals, days=days), bars(closes, days=days), LabelConfig(horizon=1), cost_bps
    )
    # Every bar but the last is realized; the backtest's net return over the same bars
    # (with the position closed at the last one) is the same money.
    assert len(out) == len(closes) - 1
    close = np.asarray(closes)
    w = np.asarray(signals[:-1] + [0], dtype=float)
    previous = np.concatenate(([0.0], w[:-1]))
    asset = np.concatenate(([0.0], close[1:] / close[:-1] - 1))
    backtest = previous * asset - cost_bps / 1e4 * np.abs(w - previous)
    assert out["realized_net_return"].sum() == pytest.approx(
        backtest[:-1].sum() + previous[-1] * asset[-1], abs=1e-12
    )


def realized_frame():
    # Two symbols over three bars; per-bar portfolio returns 0.02, -0.01, 0.03.
    return pd.DataFrame(
        {
            "bar_ts": [DAYS[0], DAYS[0], DAYS[1], DAYS[1], DAYS[2], DAYS[2]],
            "symbol": ["A", "B"] * 3,
            "probability": [0.9, 0.2, 0.6, 0.4, 0.7, 0.3],
            "signal": [1, -1, 1, -1, 1, -1],
            "realized_label": [1, 0, 0, 1, 1, 0],
            "realized_net_return": [0.03, 0.01, -0.02, 0.0, 0.05, 0.01],
        }
    )


def test_window_metrics_exact():
    m = window_metrics(realized_frame(), periods_per_year=252)
    r = np.array([0.02, -0.01, 0.03])
    assert m["net_sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), abs=1e-12)
    assert m["max_drawdown"] == pytest.approx(1 - 1.02 * 0.99 / 1.02, abs=1e-12)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert m["total_return"] == pytest.approx(1.02 * 0.99 * 1.03 - 1, abs=1e-12)
    # Positives score 0.9, 0.4, 0.7; negatives 0.2, 0.6, 0.3: 8 of 9 pairs ordered.
    assert m["roc_auc"] == pytest.approx(8 / 9)
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.7, 0.3])
    y = np.array([1, 0, 0, 1, 1, 0])
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert (m["n_predictions"], m["n_bars"], m["n_symbols"], m["n_long"], m["n_short"]) == (
        6,
        3,
        2,
        3,
        3,
    )
    assert 0.5 < m["probabilistic_sharpe"] < 1


def test_one_class_has_no_auc_and_one_bar_no_sharpe():
    frame = realized_frame().iloc[:2].assign(realized_label=1)
    m = window_metrics(frame, periods_per_year=252)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["net_sharpe"])
    assert m["n_bars"] == 1


def test_rolling_windows_take_the_last_bars():
    results = rolling_windows(realized_frame(), 252, windows=(2, 10))
    assert [r.label for r in results] == ["2b", "10b"]
    short, long = results
    assert (short.window_start, short.window_end, short.n_predictions) == (DAYS[1], DAYS[2], 4)
    assert short.metrics["complete"] and not long.metrics["complete"]
    assert long.metrics["n_bars"] == 3 and long.window_start == DAYS[0]
    assert rolling_windows(realized_frame().iloc[:0], 252) == []
