"""A cost-aware backtest of a signal, and the business metrics a desk reads.

Positions w_t are decided at the close of bar t from the prediction at t and earn the
next bar's return: r_t = w_{t-1}·R_t − c·|w_t − w_{t-1}|, with c the one-way cost
(fees plus half the spread) as a fraction. Several symbols are equally weighted per bar.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True)
class BusinessMetrics:
    net_sharpe: float
    """Annualized: mean / std · sqrt(bars per year)."""
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

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def positions_from_probability(proba: np.ndarray, band: float = 0.0) -> np.ndarray:
    """Long above 0.5 + band, short below 0.5 − band, flat in between."""
    p = np.asarray(proba, dtype=float)
    return np.where(p > 0.5 + band, 1.0, np.where(p < 0.5 - band, -1.0, 0.0))


def strategy_returns(positions: np.ndarray, asset_returns: np.ndarray, cost: float) -> np.ndarray:
    """r_t = w_{t−1}·R_t − c·|w_t − w_{t−1}| with w_{−1} = 0; R_t simple returns of bar t.

    The position chosen at the close of bar t (``positions[t]``) earns ``asset_returns[t+1]``;
    the cost of changing it is paid at bar t.
    """
    w = np.asarray(positions, dtype=float)
    r = np.asarray(asset_returns, dtype=float)
    if w.shape != r.shape:
        raise ValueError("positions and returns must have the same length")
    previous = np.concatenate(([0.0], w[:-1]))
    return previous * r - cost * np.abs(w - previous)


def bars_per_year(timestamps: pd.Series | pd.DatetimeIndex) -> float:
    """Bars per year measured from the data: (n − 1) intervals over the years spanned."""
    ts = pd.DatetimeIndex(timestamps).sort_values().unique()
    if len(ts) < 2:
        raise ValueError("need at least two distinct timestamps to measure bars per year")
    years = (ts[-1] - ts[0]).total_seconds() / SECONDS_PER_YEAR
    return (len(ts) - 1) / years


def business_metrics(
    returns: np.ndarray, positions: np.ndarray, periods_per_year: float
) -> BusinessMetrics:
    """Metrics of one position series and its net returns."""
    w = np.asarray(positions, dtype=float)
    previous = np.concatenate(([0.0], w[:-1]))
    return portfolio_metrics(returns, np.abs(w - previous), previous != 0, periods_per_year)


def portfolio_metrics(
    returns: np.ndarray, turnover: np.ndarray, active: np.ndarray, periods_per_year: float
) -> BusinessMetrics:
    """Metrics from net returns per bar, traded |Δw| per bar and which bars held positions."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        raise ValueError("need at least two strategy returns")
    std = r.std(ddof=1)
    sharpe = float(r.mean() / std * np.sqrt(periods_per_year)) if std > 0 else 0.0
    gains, losses = r[r > 0].sum(), r[r < 0].sum()
    profit_factor = float(gains / -losses) if losses < 0 else float("inf")
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    drawdown = float(np.max(1.0 - equity / peak))
    active = np.asarray(active, dtype=bool)
    hit_rate = float((r[active] > 0).mean()) if active.any() else 0.0
    return BusinessMetrics(
        net_sharpe=sharpe,
        profit_factor=profit_factor,
        max_drawdown=drawdown,
        hit_rate=hit_rate,
        turnover=float(np.mean(turnover)),
        total_return=float(equity[-1] - 1.0),
        bars_per_year=float(periods_per_year),
        n_bars=len(r),
    )


def backtest_signal(
    frame: pd.DataFrame, proba_column: str = "proba", cost_bps: float = 5.0, band: float = 0.0
) -> tuple[BusinessMetrics, pd.Series]:
    """Backtest predictions over a pooled frame with columns symbol, ts, close, proba.

    Each symbol trades its own position; the portfolio return per bar is the mean over the
    symbols present. Returns the metrics and the portfolio's net return series by ts.
    """
    cost = cost_bps / 1e4
    per_symbol = []
    for _, group in frame.sort_values(["symbol", "ts"]).groupby("symbol"):
        close = group["close"].to_numpy(dtype=float)
        asset = np.concatenate(([0.0], close[1:] / close[:-1] - 1.0))
        w = positions_from_probability(group[proba_column].to_numpy(), band)
        net = strategy_returns(w, asset, cost)
        previous = np.concatenate(([0.0], w[:-1]))
        per_symbol.append(
            pd.DataFrame(
                {
                    "ts": group["ts"].to_numpy(),
                    "ret": net,
                    "traded": np.abs(w - previous),
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
        bars_per_year(portfolio.index),
    )
    return metrics, portfolio
