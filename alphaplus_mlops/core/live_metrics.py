"""What logged predictions turned out to be, and rolling live metrics over them.

Outcomes use the model's own label definition (``core.labels``) on the stored bars, so a
live label is the label the training dataset would give the same (symbol, bar). The paper
P&L of a prediction is the backtest's rule (``core.backtest``) attributed to the bar that
decided it: the position w_t = signal taken at the close of bar t earns the next bar's
simple return and pays the cost of changing it,

    pnl_t = w_t·R_{t+1} − c·|w_t − w_{t−1}|,

with w_{t−1} the series' position at the symbol's previous bar (0 when nothing was
predicted there, so a missing answer closes the position) and no position carried across
a gap in the bars. Summed over a series it is the backtest's net return of the same
positions. A series is one (version, role, symbol).

No Dagster and no database here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.core.backtest import gaps_after, portfolio_metrics, strategy_returns
from alphaplus_mlops.core.labels import LabelConfig, build_labels
from alphaplus_mlops.core.metrics import classification_metrics
from alphaplus_mlops.core.stats import probabilistic_sharpe

SERIES = ["model_version_id", "role", "symbol"]
OUTCOME_COLUMNS = [
    *SERIES,
    "bar_ts",
    "realized_return",
    "realized_label",
    "realized_t1",
    "realized_net_return",
]
DEFAULT_WINDOWS = (21, 63, 252)


def window_label(bars: int) -> str:
    return f"{bars}b"


def _net_returns(signal_by_ts: pd.Series, bars: pd.DataFrame, cost: float) -> pd.Series:
    """pnl_t for one series on its symbol's bars (sorted by ts), from its first prediction;
    NaN at the last stored bar, whose next return is not known yet."""
    grid = bars[bars["ts"] >= signal_by_ts.index.min()].reset_index(drop=True)
    w = signal_by_ts.reindex(grid["ts"]).fillna(0.0).to_numpy(dtype=float)
    close = grid["close"].to_numpy(dtype=float)
    asset = np.concatenate(([0.0], close[1:] / close[:-1] - 1.0))
    gap = gaps_after(grid)
    # The backtest's r_t = w_{t-1}·R_t − c·|Δw_t|, split in its two terms so each bar's
    # prediction gets its own cost and the return its position earns at the next bar.
    cost_paid = strategy_returns(w, np.zeros_like(asset), cost, gap)
    earned = strategy_returns(w, asset, 0.0, gap)
    pnl = cost_paid + np.concatenate((earned[1:], [np.nan]))
    return pd.Series(pnl, index=pd.DatetimeIndex(grid["ts"]))


def realized_outcomes(
    predictions: pd.DataFrame, bars: pd.DataFrame, label_config: LabelConfig, cost_bps: float
) -> pd.DataFrame:
    """The outcome of every prediction whose label interval has ended on ``bars``.

    ``predictions``: model_version_id, role, symbol, bar_ts, signal (one label definition;
    several rows of one series and bar keep the first). ``bars``: symbol, ts, close, the
    symbols' stored history (the label's volatility is measured on it, as the dataset's
    was). Returns OUTCOME_COLUMNS, one row per series and bar that has a label.
    """
    if predictions.empty:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    keyed = predictions.drop_duplicates([*SERIES, "bar_ts"], keep="first")
    bars = bars.sort_values(["symbol", "ts"]).reset_index(drop=True)
    labels = build_labels(bars, label_config).dropna(subset=["label"])
    labels = labels.rename(
        columns={
            "t0": "bar_ts",
            "forward_return": "realized_return",
            "label": "realized_label",
            "t1": "realized_t1",
        }
    )
    out = keyed.merge(
        labels[["symbol", "bar_ts", "realized_return", "realized_label", "realized_t1"]],
        on=["symbol", "bar_ts"],
    )
    if out.empty:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    by_symbol = dict(tuple(bars.groupby("symbol", sort=False)))
    cost = cost_bps / 1e4
    net = []
    for key, series in keyed.groupby(SERIES, sort=False):
        signal = series.set_index("bar_ts")["signal"].astype(float)
        pnl = _net_returns(signal, by_symbol[key[2]], cost)
        at = pnl.reindex(pd.DatetimeIndex(series["bar_ts"])).to_numpy()
        net.append(series[[*SERIES, "bar_ts"]].assign(realized_net_return=at))
    out = out.merge(pd.concat(net), on=[*SERIES, "bar_ts"], how="left")
    out["realized_label"] = out["realized_label"].astype(int)
    return out[OUTCOME_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class WindowResult:
    label: str
    bars: int
    """The window's length in bars; the data may hold fewer (``complete`` is then False)."""
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_predictions: int
    metrics: dict


def window_metrics(realized: pd.DataFrame, periods_per_year: float) -> dict:
    """Metrics of realized predictions (bar_ts, symbol, probability, signal,
    realized_label, realized_net_return; one row per symbol and bar).

    ML metrics are per prediction. Business metrics are on the per-bar portfolio, the mean
    net return over the symbols of a bar (as the backtest pools symbols): net Sharpe
    (annualized with ``periods_per_year``), PSR(0), max drawdown, total return, and the
    hit rate, the share of bars holding a position whose net return was positive.
    """
    ml = classification_metrics(
        realized["realized_label"].to_numpy(dtype=int), realized["probability"].to_numpy()
    )
    by_bar = realized.groupby("bar_ts", sort=True)
    returns = by_bar["realized_net_return"].mean().to_numpy(dtype=float)
    active = by_bar["signal"].apply(lambda s: bool((s != 0).any())).to_numpy(dtype=bool)
    metrics = {
        "roc_auc": ml["roc_auc"],
        "log_loss": ml["log_loss"],
        "brier": ml["brier"],
        "accuracy": ml["accuracy"],
        "positive_rate": ml["positive_rate"],
        "n_predictions": int(len(realized)),
        "n_bars": int(len(returns)),
        "n_symbols": int(realized["symbol"].nunique()),
        "n_long": int((realized["signal"] > 0).sum()),
        "n_short": int((realized["signal"] < 0).sum()),
        "probabilistic_sharpe": probabilistic_sharpe(returns),
    }
    if len(returns) >= 2:
        # Turnover is not known per bar here (only the costs it paid), so it is not reported.
        business = portfolio_metrics(returns, np.zeros(len(returns)), active, periods_per_year)
        metrics.update(
            net_sharpe=business.net_sharpe,
            max_drawdown=business.max_drawdown,
            hit_rate=business.hit_rate,
            total_return=business.total_return,
            profit_factor=business.profit_factor,
        )
    else:
        metrics.update(
            net_sharpe=float("nan"),
            max_drawdown=float("nan"),
            hit_rate=float("nan"),
            total_return=float(returns.sum()) if len(returns) else float("nan"),
            profit_factor=float("nan"),
        )
    return metrics


def rolling_windows(
    realized: pd.DataFrame, periods_per_year: float, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> list[WindowResult]:
    """For each window length N, the metrics of the last N bars holding realized
    predictions of one (version, role); empty for no predictions."""
    if realized.empty:
        return []
    ordered = pd.DatetimeIndex(realized["bar_ts"].unique()).sort_values()
    results = []
    for n in windows:
        if n < 1:
            raise ValueError(f"a window is at least one bar, got {n}")
        start = ordered[-n] if len(ordered) >= n else ordered[0]
        rows = realized[realized["bar_ts"] >= start]
        metrics = window_metrics(rows, periods_per_year)
        metrics["complete"] = len(ordered) >= n
        results.append(
            WindowResult(
                label=window_label(n),
                bars=n,
                window_start=pd.Timestamp(start),
                window_end=pd.Timestamp(ordered[-1]),
                n_predictions=len(rows),
                metrics=metrics,
            )
        )
    return results
