"""Labels with their intervals: every sample knows the span [t0, t1] its label looks at.

Fixed horizon: y = 1 when log(C[t+h] / C[t]) > tau, with tau a constant or k * sigma_t * sqrt(h).
Triple barrier: upper barrier C[t]·exp(pt·sigma_t·√h), lower C[t]·exp(−sl·sigma_t·√h),
vertical at t+h; the label is 1 when the upper is touched first, 0 when the lower is, and
at the vertical barrier the sign of the return decides. t1 is the bar that decided.
Closing prices only: which barrier a bar touched first inside the bar is unknowable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from alphaplus_mlops.core.features import VOL_SPAN


@dataclass(frozen=True)
class LabelConfig:
    method: Literal["fixed_horizon", "triple_barrier"] = "fixed_horizon"
    horizon: int = 5
    threshold: float = 0.0
    """fixed_horizon: tau, or the multiple k of sigma_t·√h when vol_scaled."""
    vol_scaled: bool = False
    profit_take: float = 1.0
    stop_loss: float = 1.0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1 bar, got {self.horizon}")
        if self.method not in ("fixed_horizon", "triple_barrier"):
            raise ValueError(f"unknown label method {self.method!r}")
        if self.method == "triple_barrier" and (self.profit_take <= 0 or self.stop_loss <= 0):
            raise ValueError("profit_take and stop_loss must be positive")


def daily_vol(close: pd.Series) -> pd.Series:
    ret = np.log(close.astype(float)).diff()
    return np.sqrt((ret**2).ewm(span=VOL_SPAN, min_periods=VOL_SPAN, adjust=False).mean())


def symbol_labels(bars: pd.DataFrame, config: LabelConfig) -> pd.DataFrame:
    """label, t0, t1, forward_return for one symbol's bars (sorted). Unlabelable rows NaN."""
    close = bars["close"].astype(float).to_numpy()
    ts = bars["ts"].reset_index(drop=True)
    n, h = len(close), config.horizon
    sigma = daily_vol(bars["close"]).to_numpy()
    log_c = np.log(close)
    label = np.full(n, np.nan)
    t1_pos = np.full(n, -1, dtype=np.int64)
    fwd = np.full(n, np.nan)

    for t in range(n - h):
        if config.method == "fixed_horizon":
            r = log_c[t + h] - log_c[t]
            tau = (
                config.threshold * sigma[t] * np.sqrt(h) if config.vol_scaled else config.threshold
            )
            if np.isnan(tau):
                continue
            label[t], t1_pos[t], fwd[t] = float(r > tau), t + h, r
        else:
            if np.isnan(sigma[t]):
                continue
            width = sigma[t] * np.sqrt(h)
            path = log_c[t + 1 : t + h + 1] - log_c[t]
            up = np.flatnonzero(path >= config.profit_take * width)
            down = np.flatnonzero(path <= -config.stop_loss * width)
            first_up = up[0] if up.size else h
            first_down = down[0] if down.size else h
            if first_up < first_down:
                k, value = first_up, 1.0
            elif first_down < first_up:
                k, value = first_down, 0.0
            else:
                k, value = h - 1, float(path[-1] > 0)
            label[t], t1_pos[t], fwd[t] = value, t + 1 + k, path[k]

    valid = t1_pos >= 0
    t1 = pd.Series(pd.NaT, index=range(n), dtype=ts.dtype)
    t1[valid] = ts.to_numpy()[t1_pos[valid]]
    return pd.DataFrame({"label": label, "t0": ts, "t1": t1, "forward_return": fwd})


def build_labels(bars: pd.DataFrame, config: LabelConfig) -> pd.DataFrame:
    parts = []
    for symbol, group in bars.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        labels = symbol_labels(group.reset_index(drop=True), config)
        labels.insert(0, "symbol", symbol)
        parts.append(labels)
    return pd.concat(parts, ignore_index=True)
