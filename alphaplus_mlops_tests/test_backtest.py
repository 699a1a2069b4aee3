"""The backtest's gap rules, per-symbol bars per year and execution-delay Sharpe."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.backtest import (
    BusinessMetrics,
    backtest_signal,
    bars_per_year,
    business_metrics,
    executed_positions,
    gaps_after,
    median_bars_per_year,
    strategy_returns,
)

C = 0.001  # 10 bps


def frame_of(symbol, ts, close, proba):
    return pd.DataFrame({"symbol": symbol, "ts": ts, "close": close, "proba": proba})


def foresight(close):
    """Long before a rise, short before a fall, flat on the last row: the next return known."""
    nxt = np.append(np.sign(np.diff(close)), 0.0)
    return 0.5 + 0.4 * nxt


def sharpe(r, per_year):
    r = np.asarray(r, dtype=float)
    return r.mean() / r.std(ddof=1) * math.sqrt(per_year)


# --- gaps ---------------------------------------------------------------------------------


def test_one_bar_foresight_earns_nothing_across_a_gap():
    days = pd.date_range("2024-01-01", periods=13, freq="D", tz="UTC")
    ts = days[[0, 1, 2, 10, 11, 12]]  # a week missing after the third row: spacing 8 > 5 x 1
    close = np.array([100.0, 110.0, 99.0, 150.0, 165.0, 148.5])
    proba = foresight(close)
    assert proba.tolist() == pytest.approx([0.9, 0.1, 0.9, 0.9, 0.1, 0.5])
    metrics, returns = backtest_signal(frame_of("X", ts, close, proba), cost_bps=10)
    # Held after each close: 1, -1, then closed before the gap, 1, -1, 0.
    expected = [
        -C,  # open long
        0.10 - 2 * C,  # long earns +10%, flip to short
        0.10 - C,  # short earns +10%, close before the gap
        -C,  # the +51.5% across the gap is not earned; reopen long
        0.10 - 2 * C,
        0.10 - C,
    ]
    assert returns.index.tolist() == ts.tolist()
    assert returns.tolist() == pytest.approx(expected)
    assert metrics.gaps == 1
    assert metrics.turnover == pytest.approx(8 / 6)
    per_year = bars_per_year(ts)
    assert metrics.bars_per_year == pytest.approx(per_year)
    assert metrics.net_sharpe == pytest.approx(sharpe(expected, per_year))
    # One bar later: held 0, 1, (-1 closed before the gap) 0, 0, 1, -1.
    delayed = [0.0, -C, -0.10 - C, 0.0, -C, -0.10 - 2 * C]
    assert metrics.net_sharpe_delayed == pytest.approx(sharpe(delayed, per_year))


def test_executed_positions_close_before_a_gap_and_delay_within_segments():
    w = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 0.0])
    gap = np.array([False, False, True, False, False, False])
    assert executed_positions(w, gap).tolist() == [1, -1, 0, 1, -1, 0]
    assert executed_positions(w, gap, delay=1).tolist() == [0, 1, 0, 0, 1, -1]
    assert executed_positions(w, gap, delay=2).tolist() == [0, 0, 0, 0, 0, 1]
    r = np.array([0.0, 0.10, -0.10, 0.515, 0.10, -0.10])
    assert strategy_returns(w, r, C, gap).tolist() == pytest.approx(
        [-C, 0.10 - 2 * C, 0.10 - C, -C, 0.10 - 2 * C, 0.10 - C]
    )
    assert strategy_returns(w, r, C, gap, delay=1).tolist() == pytest.approx(
        [0.0, -C, -0.10 - C, 0.0, -C, -0.10 - 2 * C]
    )
    with pytest.raises(ValueError, match="same length"):
        executed_positions(w, gap[:-1])


def test_a_bar_one_symbol_misses_and_another_has_is_a_gap_for_that_symbol():
    ts = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    close = np.array([100.0, 101.0, 102.0, 103.0, 104.0, 105.0])
    a = frame_of("A", ts, close, 0.9)
    b = frame_of("B", ts.delete(3), np.delete(close, 3), 0.9)
    frame = pd.concat([b, a], ignore_index=True)
    assert gaps_after(frame).tolist() == [False, False, True, False, False] + [False] * 6
    metrics, returns = backtest_signal(frame, cost_bps=10)
    assert metrics.gaps == 1
    ra = [-C, 0.01, 1 / 101, 1 / 102, 1 / 103, 1 / 104]
    rb = [-C, 0.01, 1 / 101 - C, -C, 1 / 104]  # B closes at day 2, reopens at day 4
    both = [(ra[0] + rb[0]) / 2, (ra[1] + rb[1]) / 2, (ra[2] + rb[2]) / 2, ra[3]]
    both += [(ra[4] + rb[3]) / 2, (ra[5] + rb[4]) / 2]
    assert returns.tolist() == pytest.approx(both)


def test_gaps_are_counted_exactly_and_weekends_and_holidays_are_not_gaps():
    days = pd.bdate_range("2024-01-01", "2024-03-29", tz="UTC")  # 65 business days
    assert gaps_after(frame_of("X", days, 1.0, 0.5)).sum() == 0
    # A Monday holiday (Fri -> Tue: 4 days) and Easter (Thu -> Tue: 5 days) are not gaps.
    holidays = pd.DatetimeIndex(["2024-02-19", "2024-03-29"], tz="UTC")
    kept = days.difference(holidays)
    assert gaps_after(frame_of("X", kept, 1.0, 0.5)).sum() == 0
    # A missing week for a symbol traded alone (Fri -> Mon two weeks later: 10 days) is one.
    week = pd.bdate_range("2024-02-05", "2024-02-09", tz="UTC")
    assert gaps_after(frame_of("X", kept.difference(week), 1.0, 0.5)).sum() == 1
    # Two symbols: A complete, B missing one single day and, elsewhere, three days in a row.
    b_days = days.delete([10, 30, 31, 32])
    frame = pd.concat([frame_of("A", days, 1.0, 0.5), frame_of("B", b_days, 1.0, 0.5)])
    gap = gaps_after(frame)
    assert gap.sum() == 2
    b_gap_rows = np.flatnonzero(gap) - len(days)
    assert b_days[b_gap_rows].tolist() == [days[9], days[29]]
    close = np.linspace(100, 120, len(frame))
    metrics, _ = backtest_signal(frame.assign(close=close), cost_bps=10)
    assert metrics.gaps == 2


def test_gaps_are_found_whatever_the_row_order():
    ts = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    frame = pd.concat([frame_of("A", ts, 1.0, 0.5), frame_of("B", ts[[0, 2, 3]], 1.0, 0.5)])
    shuffled = frame.sample(frac=1.0, random_state=1)
    expected = (shuffled["symbol"] == "B") & (shuffled["ts"] == ts[0])
    assert gaps_after(shuffled).tolist() == expected.tolist()


def test_duplicate_rows_of_a_symbol_are_refused():
    ts = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    frame = frame_of("X", ts[[0, 1, 1, 2]], [1.0, 2.0, 2.0, 3.0], 0.9)
    with pytest.raises(ValueError, match="more than one row"):
        backtest_signal(frame)


def reference_backtest(frame, cost_bps, band):
    """The computation before gaps existed: every next row of a symbol is its next bar."""
    cost = cost_bps / 1e4
    rows = []
    for _, g in frame.sort_values(["symbol", "ts"]).groupby("symbol"):
        close, proba = g["close"].tolist(), g["proba"].tolist()
        w_prev = 0.0
        for t in range(len(g)):
            p = proba[t]
            w = 1.0 if p > 0.5 + band else -1.0 if p < 0.5 - band else 0.0
            asset = close[t] / close[t - 1] - 1.0 if t else 0.0
            net = w_prev * asset - cost * abs(w - w_prev)
            rows.append((g["ts"].iloc[t], net, abs(w - w_prev), w_prev != 0))
            w_prev = w
    df = pd.DataFrame(rows, columns=["ts", "ret", "traded", "held"]).groupby("ts")
    return df["ret"].mean(), df["traded"].mean(), df["held"].any()


def random_frame(rng, calendar, n_symbols, spans):
    parts = []
    for k in range(n_symbols):
        lo, hi = spans[k]
        ts = calendar[lo:hi]
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(ts))))
        proba = np.where(rng.random(len(ts)) < 0.1, 0.5, rng.random(len(ts)))
        parts.append(frame_of(f"S{k}", ts, close, proba))
    return pd.concat(parts, ignore_index=True)


FREQS = {"D": "D", "B": "B", "h": "h"}


@settings(max_examples=60, deadline=None)
@given(
    n_times=st.integers(3, 60),
    n_symbols=st.integers(1, 3),
    freq=st.sampled_from(sorted(FREQS)),
    cost_bps=st.floats(0, 20),
    band=st.floats(0, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
def test_without_gaps_the_backtest_is_the_old_computation(
    n_times, n_symbols, freq, cost_bps, band, seed
):
    rng = np.random.default_rng(seed)
    calendar = pd.date_range("2024-01-01", periods=n_times, freq=FREQS[freq], tz="UTC")
    frame = random_frame(rng, calendar, n_symbols, [(0, n_times)] * n_symbols)
    metrics, returns = backtest_signal(frame, cost_bps=cost_bps, band=band)
    ret, traded, held = reference_backtest(frame, cost_bps, band)
    assert metrics.gaps == 0
    assert returns.index.equals(ret.index)
    assert returns.to_numpy() == pytest.approx(ret.to_numpy(), rel=1e-12, abs=1e-15)
    expected = pd.Series(ret.to_numpy())
    per_year = bars_per_year(ret.index)  # the old rate: all symbols share the calendar
    assert metrics.bars_per_year == pytest.approx(per_year)
    std = expected.std(ddof=1)
    old_sharpe = expected.mean() / std * math.sqrt(per_year) if std > 0 else 0.0
    assert metrics.net_sharpe == pytest.approx(old_sharpe, rel=1e-9, abs=1e-12)
    assert metrics.turnover == pytest.approx(traded.mean(), rel=1e-12)
    assert metrics.hit_rate == pytest.approx((ret[held] > 0).mean() if held.any() else 0.0)
    assert metrics.total_return == pytest.approx(np.prod(1 + expected) - 1, rel=1e-9, abs=1e-12)
    assert metrics.n_bars == len(ret)


@settings(max_examples=60, deadline=None)
@given(
    n_times=st.integers(4, 40),
    n_symbols=st.integers(2, 3),
    cost_bps=st.floats(0, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_symbols_entering_and_leaving_the_calendar_have_no_gaps(n_times, n_symbols, cost_bps, seed):
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range("2024-01-01", periods=n_times, tz="UTC")
    spans = [(0, n_times)]
    for _ in range(n_symbols - 1):
        lo = int(rng.integers(0, n_times - 2))
        spans.append((lo, int(rng.integers(lo + 2, n_times + 1))))
    frame = random_frame(rng, calendar, n_symbols, spans)
    metrics, returns = backtest_signal(frame, cost_bps=cost_bps)
    ret, _, _ = reference_backtest(frame, cost_bps, 0.0)
    assert metrics.gaps == 0
    assert returns.to_numpy() == pytest.approx(ret.to_numpy(), rel=1e-12, abs=1e-15)


def reference_gaps(frame):
    calendar = sorted(set(frame["ts"]))
    median = pd.Series(np.diff(calendar)).median()
    count = 0
    for _, g in frame.sort_values(["symbol", "ts"]).groupby("symbol"):
        ts = g["ts"].tolist()
        for a, b in zip(ts[:-1], ts[1:], strict=True):
            if calendar.index(b) != calendar.index(a) + 1 or b - a > 5 * median:
                count += 1
    return count


@settings(max_examples=60, deadline=None)
@given(
    n_times=st.integers(8, 50),
    n_symbols=st.integers(1, 3),
    drop=st.floats(0.05, 0.4),
    seed=st.integers(0, 2**32 - 1),
)
def test_nothing_is_earned_across_a_gap(n_times, n_symbols, drop, seed):
    """Rescaling a symbol's prices after each of its gaps changes no return."""
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range("2024-01-01", periods=n_times, tz="UTC")
    frame = random_frame(rng, calendar, n_symbols, [(0, n_times)] * n_symbols)
    frame = frame[(rng.random(len(frame)) > drop) | (frame["ts"] == calendar[0])]
    frame = frame[frame.groupby("symbol")["ts"].transform("size") >= 2]
    if frame["ts"].nunique() < 3:
        return
    gap = gaps_after(frame)
    assert gap.sum() == reference_gaps(frame)
    segment = pd.Series(gap, index=frame.index).groupby(frame["symbol"]).cumsum()
    # gap marks the last row before a gap: the segment a row belongs to starts after it.
    segment = segment - gap
    ids = frame.groupby([frame["symbol"], segment]).ngroup().to_numpy()
    factors = np.exp(rng.normal(0, 1, ids.max() + 1))[ids]  # one factor per segment
    rescaled = frame.assign(close=frame["close"] * factors)
    m1, r1 = backtest_signal(frame, cost_bps=5)
    m2, r2 = backtest_signal(rescaled, cost_bps=5)
    assert m1.gaps == m2.gaps == gap.sum()
    assert r2.to_numpy() == pytest.approx(r1.to_numpy(), rel=1e-9, abs=1e-12)
    assert m2.net_sharpe_delayed == pytest.approx(m1.net_sharpe_delayed, rel=1e-6, abs=1e-9)


# --- bars per year ------------------------------------------------------------------------


def long_frame(symbol, ts):
    return frame_of(symbol, ts, np.linspace(100, 110, len(ts)), 0.9)


def test_bars_per_year_is_the_median_over_symbols_of_their_own_rates():
    two_years = pd.bdate_range("2020-01-01", "2021-12-31", tz="UTC")
    second_year = two_years[two_years.year == 2021]
    frame = pd.concat([long_frame("A", two_years), long_frame("B", second_year)])
    metrics, _ = backtest_signal(frame)
    expected = np.median([bars_per_year(two_years), bars_per_year(second_year)])
    assert metrics.bars_per_year == pytest.approx(expected)
    assert 250 < metrics.bars_per_year < 265


def test_bars_per_year_is_not_inflated_by_symbols_on_different_clocks():
    days = pd.bdate_range("2021-01-01", "2021-12-31", tz="UTC")
    a = long_frame("A", days + pd.Timedelta(hours=16))
    b = long_frame("B", days + pd.Timedelta(hours=21))
    frame = pd.concat([a, b])
    assert bars_per_year(frame["ts"]) > 500  # the union: twice the real rate
    assert median_bars_per_year(frame) == pytest.approx(bars_per_year(a["ts"]))
    assert backtest_signal(frame)[0].bars_per_year == pytest.approx(bars_per_year(a["ts"]))


def test_bars_per_year_of_weekly_and_daily_symbols_is_the_median_of_the_two():
    weekly = pd.date_range("2020-01-03", "2021-12-31", freq="W-FRI", tz="UTC")
    daily = pd.bdate_range("2020-01-01", "2021-12-31", tz="UTC")
    frame = pd.concat([long_frame("W", weekly), long_frame("D", daily)])
    expected = (bars_per_year(weekly) + bars_per_year(daily)) / 2
    assert backtest_signal(frame)[0].bars_per_year == pytest.approx(expected)
    assert 52 < bars_per_year(weekly) < 53 and 260 < bars_per_year(daily) < 262


def test_a_symbol_without_two_timestamps_has_no_rate():
    ts = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    frame = pd.concat([long_frame("A", ts), long_frame("B", ts[:1])])
    assert median_bars_per_year(frame) == pytest.approx(bars_per_year(ts))
    with pytest.raises(ValueError, match="two distinct timestamps"):
        median_bars_per_year(long_frame("B", ts[:1]))


# --- execution delay ----------------------------------------------------------------------


def test_the_delay_exposes_one_bar_foresight():
    rng = np.random.default_rng(7)
    ts = pd.bdate_range("2020-01-01", periods=1500, tz="UTC")
    parts = []
    for symbol in ("A", "B"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
        parts.append(frame_of(symbol, ts, close, foresight(close)))
    metrics, _ = backtest_signal(pd.concat(parts), cost_bps=1)
    assert metrics.net_sharpe > 20
    assert abs(metrics.net_sharpe_delayed) < 1.0
    assert metrics.gaps == 0


def test_a_constant_long_position_loses_only_the_entry_and_one_bar_to_the_delay():
    rng = np.random.default_rng(11)
    ts = pd.bdate_range("2020-01-01", periods=500, tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, len(ts))))
    metrics, returns = backtest_signal(frame_of("X", ts, close, 0.9), cost_bps=10)
    asset = close[1:] / close[:-1] - 1
    net = np.concatenate(([-C], asset))
    delayed = np.concatenate(([0.0, -C], asset[1:]))  # enters one bar later
    per_year = bars_per_year(ts)
    assert returns.to_numpy() == pytest.approx(net)
    assert metrics.net_sharpe == pytest.approx(sharpe(net, per_year))
    assert metrics.net_sharpe_delayed == pytest.approx(sharpe(delayed, per_year))
    assert metrics.net_sharpe_delayed == pytest.approx(metrics.net_sharpe, abs=0.1)


# --- the metrics record -------------------------------------------------------------------


def test_the_record_lists_the_delayed_sharpe_after_the_net_sharpe_and_the_gaps():
    m = business_metrics(np.array([0.01, -0.02, 0.03]), np.array([1.0, 1.0, 1.0]), 252)
    keys = list(m.as_dict())
    assert keys[:2] == ["net_sharpe", "net_sharpe_delayed"]
    assert keys[-1] == "gaps" and m.gaps == 0
    assert math.isnan(m.net_sharpe_delayed)  # not measured without the delayed returns
    assert isinstance(m, BusinessMetrics)
