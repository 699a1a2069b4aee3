"""A cost-aware backtest of a signal, and the business metrics a desk reads.

Positions w_t are decided at the close of bar t from the prediction at t and earn the
next bar's return: r_t = w_{t-1}·R_t − c·|w_t − w_{t-1}|, with c the one-way cost
(fees plus half the spread) as a fraction. Several symbols are equally weighted per bar.

Gaps. A position is carried only from a bar to the next one. The market calendar is the
sorted union of the timestamps of all symbols in the frame; the step from a symbol's row
to its next row is consecutive when that next row is at the next calendar timestamp and
the spacing is at most ``MAX_SPACING_RATIO`` (5) times the median spacing of the calendar.
The second rule catches gaps that no other symbol reveals (one symbol alone, a missing
week of daily bars); weekends and holidays (1.4–4× the median day) pass. Any other step is
a gap: the position is closed at the close of the bar before it (paying the cost to close),
earns nothing across it and is reopened at the first bar after it (paying the cost to
reopen), so missing bars never turn into a silent multi-bar return. Their count is
``BusinessMetrics.gaps``. Symbols stamped on different clocks (one at 16:00, another at
21:00) interleave on the union calendar, so every step would be a gap: stamp bars of one
session alike (e.g. by the session's date) before backtesting them together.

Execution delay. ``net_sharpe_delayed`` is the net Sharpe when each position is executed
one bar later than decided (the decision at the close of bar t earns bar t+2's return and
pays its cost at t+1), under the same gap rules. A signal that only works without the delay
usually sees the future by one bar.

Bars per year are measured per symbol from its own timestamps; the median over symbols
annualizes, so symbols on different calendars or spans do not inflate it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.25 * 24 * 3600
MAX_SPACING_RATIO = 5.0
"""A step longer than this many median calendar spacings is a gap."""


@dataclass(frozen=True)
class BusinessMetrics:
    net_sharpe: float
    """Annualized: mean / std · sqrt(bars per year)."""
    net_sharpe_delayed: float
    """Net Sharpe with every position executed one bar later (NaN when not computed)."""
    profit_factor: float
    max_drawdown: float
    """Largest fall of the equity curve from its running peak, as a fraction of the peak."""
    hit_rate: float
    """Share of bars with a position whose net return was positive."""
    turnover: float
    """Mean |w_t − w_{t−1}| per bar."""
    total_return: float
    bars_per_year: float
    n_bars: int
    gaps: int
    """Steps between rows of a symbol that were not consecutive bars, summed over symbols."""

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


SMALL_BATCH = 8
"""Up to this many probabilities, positions_from_probability works on Python floats."""


def positions_from_probability(proba: np.ndarray, band: float = 0.0) -> np.ndarray:
    """Long above 0.5 + band, short below 0.5 − band, flat in between (NaN: flat)."""
    p = np.asarray(proba, dtype=float)
    long_above, short_below = 0.5 + band, 0.5 - band
    if p.size <= SMALL_BATCH:
        # The service answers one row at a time: there numpy's set-up of three array
        # operations took 7-12 µs, a fifth of the whole answer; on floats it is ~1 µs.
        held = [
            1.0 if v > long_above else -1.0 if v < short_below else 0.0 for v in p.ravel().tolist()
        ]
        return np.array(held, dtype=float).reshape(p.shape)
    # NaN passes neither test, so it is flat.
    return np.subtract(p > long_above, p < short_below, dtype=float)


def _previous(x: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], x[:-1]))


def executed_positions(
    positions: np.ndarray, gap_after: np.ndarray | None = None, delay: int = 0
) -> np.ndarray:
    """The position actually held after the close of each bar.

    ``gap_after[t]`` is True when bar t+1 is not the bar after t: nothing is carried over
    the gap, so the position after bar t is 0. With ``delay`` k the decision of bar t is
    executed at bar t+k, if the k steps in between are consecutive (else never).
    """
    w = np.asarray(positions, dtype=float)
    if delay < 0:
        raise ValueError("delay must be a number of bars >= 0")
    gap = np.zeros(w.shape, dtype=bool) if gap_after is None else np.asarray(gap_after, bool)
    if gap.shape != w.shape:
        raise ValueError("positions and gap_after must have the same length")
    held = np.where(gap, 0.0, w)
    for _ in range(delay):
        held = np.where(gap, 0.0, _previous(held))
    return held


def strategy_returns(
    positions: np.ndarray,
    asset_returns: np.ndarray,
    cost: float,
    gap_after: np.ndarray | None = None,
    delay: int = 0,
) -> np.ndarray:
    """r_t = w_{t−1}·R_t − c·|w_t − w_{t−1}| with w_{−1} = 0; R_t simple returns of bar t.

    The position chosen at the close of bar t (``positions[t]``) earns ``asset_returns[t+1]``;
    the cost of changing it is paid at bar t. w are the executed positions: see
    ``executed_positions`` for ``gap_after`` (no position across a gap) and ``delay``.
    """
    r = np.asarray(asset_returns, dtype=float)
    if np.shape(positions) != r.shape:
        raise ValueError("positions and returns must have the same length")
    w = executed_positions(positions, gap_after, delay)
    previous = _previous(w)
    return previous * r - cost * np.abs(w - previous)


def gaps_after(frame: pd.DataFrame, max_spacing_ratio: float = MAX_SPACING_RATIO) -> np.ndarray:
    """Per row of a frame with columns symbol and ts (any order): True when the step to the
    symbol's next row is not consecutive on the market calendar (see the module docstring).

    The last row of a symbol has no next step (False). Two rows of a symbol at the same ts
    are not consecutive either.
    """
    n = len(frame)
    ts = pd.DatetimeIndex(frame["ts"])
    calendar = ts.unique().sort_values()
    pos = calendar.get_indexer(ts)
    codes = pd.factorize(frame["symbol"])[0]
    order = np.lexsort((pos, codes))
    symbol, p = codes[order], pos[order]
    same_symbol = symbol[1:] == symbol[:-1]
    consecutive = p[1:] == p[:-1] + 1
    if len(calendar) >= 2:
        spacing = calendar[1:] - calendar[:-1]
        too_long = np.asarray(spacing > spacing.median() * max_spacing_ratio, dtype=bool)
        step = np.minimum(p[:-1], len(calendar) - 2)
        consecutive &= ~too_long[step]
    in_order = np.zeros(n, dtype=bool)
    in_order[:-1] = same_symbol & ~consecutive
    gap = np.zeros(n, dtype=bool)
    gap[order] = in_order
    return gap


def bars_per_year(timestamps: pd.Series | pd.DatetimeIndex) -> float:
    """Bars per year measured from the data: (n − 1) intervals over the years spanned."""
    ts = pd.DatetimeIndex(timestamps).sort_values().unique()
    if len(ts) < 2:
        raise ValueError("need at least two distinct timestamps to measure bars per year")
    years = (ts[-1] - ts[0]).total_seconds() / SECONDS_PER_YEAR
    return (len(ts) - 1) / years


def median_bars_per_year(frame: pd.DataFrame) -> float:
    """The median over symbols of ``bars_per_year`` of each symbol's own timestamps.

    Symbols with fewer than two distinct timestamps have no rate and are left out.
    """
    rates = [
        bars_per_year(group) for _, group in frame.groupby("symbol")["ts"] if group.nunique() >= 2
    ]
    if not rates:
        raise ValueError("need a symbol with two distinct timestamps to measure bars per year")
    return float(np.median(rates))


def annualized_sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    """mean / std (ddof 1) · √(periods per year); 0 for a series that does not vary."""
    r = np.asarray(returns, dtype=float)
    std = r.std(ddof=1)
    return float(r.mean() / std * np.sqrt(periods_per_year)) if std > 0 else 0.0


def business_metrics(
    returns: np.ndarray,
    positions: np.ndarray,
    periods_per_year: float,
    delayed_returns: np.ndarray | None = None,
) -> BusinessMetrics:
    """Metrics of one position series and its net returns."""
    w = np.asarray(positions, dtype=float)
    previous = _previous(w)
    return portfolio_metrics(
        returns,
        np.abs(w - previous),
        previous != 0,
        periods_per_year,
        delayed_returns=delayed_returns,
    )


def portfolio_metrics(
    returns: np.ndarray,
    turnover: np.ndarray,
    active: np.ndarray,
    periods_per_year: float,
    delayed_returns: np.ndarray | None = None,
    gaps: int = 0,
) -> BusinessMetrics:
    """Metrics from net returns per bar, traded |Δw| per bar and which bars held positions.

    ``delayed_returns``: the net returns with execution one bar later, for
    ``net_sharpe_delayed`` (NaN without them); ``gaps``: the count of gaps, reported.
    """
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        raise ValueError("need at least two strategy returns")
    gains, losses = r[r > 0].sum(), r[r < 0].sum()
    profit_factor = float(gains / -losses) if losses < 0 else float("inf")
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    drawdown = float(np.max(1.0 - equity / peak))
    active = np.asarray(active, dtype=bool)
    hit_rate = float((r[active] > 0).mean()) if active.any() else 0.0
    delayed = float("nan")
    if delayed_returns is not None:
        delayed = annualized_sharpe(delayed_returns, periods_per_year)
    return BusinessMetrics(
        net_sharpe=annualized_sharpe(r, periods_per_year),
        net_sharpe_delayed=delayed,
        profit_factor=profit_factor,
        max_drawdown=drawdown,
        hit_rate=hit_rate,
        turnover=float(np.mean(turnover)),
        total_return=float(equity[-1] - 1.0),
        bars_per_year=float(periods_per_year),
        n_bars=len(r),
        gaps=int(gaps),
    )


def backtest_signal(
    frame: pd.DataFrame, proba_column: str = "proba", cost_bps: float = 5.0, band: float = 0.0
) -> tuple[BusinessMetrics, pd.Series]:
    """Backtest predictions over a pooled frame with columns symbol, ts, close, proba.

    Each symbol trades its own position, carried only between consecutive bars (see the
    module docstring); the portfolio return per bar is the mean over the symbols present.
    Returns the metrics and the portfolio's net return series by ts.
    """
    cost = cost_bps / 1e4
    data = frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    if data.duplicated(["symbol", "ts"]).any():
        raise ValueError("the frame holds more than one row for a (symbol, ts)")
    gap_after = gaps_after(data)
    per_symbol = []
    for _, group in data.groupby("symbol", sort=False):
        rows = group.index.to_numpy()
        close = group["close"].to_numpy(dtype=float)
        asset = np.concatenate(([0.0], close[1:] / close[:-1] - 1.0))
        w = positions_from_probability(group[proba_column].to_numpy(), band)
        gap = gap_after[rows]
        held = executed_positions(w, gap)
        previous = _previous(held)
        per_symbol.append(
            pd.DataFrame(
                {
                    "ts": group["ts"].to_numpy(),
                    "ret": strategy_returns(w, asset, cost, gap),
                    "delayed": strategy_returns(w, asset, cost, gap, delay=1),
                    "traded": np.abs(held - previous),
                    "held": previous != 0,
                }
            )
        )
    by_bar = pd.concat(per_symbol).groupby("ts")
    portfolio = by_bar["ret"].mean()
    # Costs are paid per symbol, so turnover is too: the mean |Δw| over the symbols of a bar.
    metrics = portfolio_metrics(
        portfolio.to_numpy(),
        by_bar["traded"].mean().to_numpy(),
        by_bar["held"].any().to_numpy(),
        median_bars_per_year(data),
        delayed_returns=by_bar["delayed"].mean().to_numpy(),
        gaps=int(gap_after.sum()),
    )
    return metrics, portfolio
