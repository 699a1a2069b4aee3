"""Features from OHLCV bars, per symbol, normalized by volatility so symbols can be pooled.

Everything is a trailing computation (rolling windows, EWMAs, ``shift`` by positive lags),
so a feature at bar t uses only bars up to t; a property test perturbs future bars to
prove it. Written with pandas rolling operations rather than a TA library: each feature is
a line or two, and the definitions (normalization, warm-up) stay in one readable place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURE_VERSION = "features-v1"
RETURN_HORIZONS = (1, 2, 5, 10, 21, 63)
VOL_SPAN = 21
WARMUP_BARS = 64  # the longest window (63 bars of returns) plus one bar for the first return
_EPS = 1e-12


def _ewm_vol(log_ret: pd.Series, span: int = VOL_SPAN) -> pd.Series:
    return np.sqrt((log_ret**2).ewm(span=span, min_periods=span, adjust=False).mean())


def _rsi(close: pd.Series, window: int = 14) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / window, min_periods=window, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / window, min_periods=window, adjust=False).mean()
    return gain / (gain + loss + _EPS)


def symbol_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Features for one symbol's bars (sorted by ts). Warm-up rows are NaN."""
    o, h, lo, c = (bars[k].astype(float) for k in ("open", "high", "low", "close"))
    v = bars["volume"].astype(float)
    log_c = np.log(c)
    ret = log_c.diff()
    vol = _ewm_vol(ret)
    out: dict[str, pd.Series] = {}

    for k in RETURN_HORIZONS:
        out[f"ret_{k}"] = (log_c - log_c.shift(k)) / (vol * np.sqrt(k) + _EPS)

    realized = {w: ret.rolling(w, min_periods=w).std() for w in (5, 21, 63)}
    out["vol_ratio_5_63"] = np.log(realized[5] / (realized[63] + _EPS) + _EPS)
    out["vol_ratio_21_63"] = np.log(realized[21] / (realized[63] + _EPS) + _EPS)
    out["vol_ewm_vs_63"] = np.log(vol / (realized[63] + _EPS) + _EPS)

    log_hl = np.log(h / lo)
    parkinson = np.sqrt((log_hl**2).rolling(21, min_periods=21).mean() / (4 * np.log(2)))
    garman_klass = np.sqrt(
        (0.5 * log_hl**2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2)
        .rolling(21, min_periods=21)
        .mean()
        .clip(lower=0)
    )
    out["parkinson_vs_close"] = np.log(parkinson / (realized[21] + _EPS) + _EPS)
    out["garman_klass_vs_close"] = np.log(garman_klass / (realized[21] + _EPS) + _EPS)
    out["range_over_vol"] = log_hl / (vol + _EPS)

    out["rsi_14"] = 2 * _rsi(c) - 1
    high_14, low_14 = h.rolling(14, min_periods=14).max(), lo.rolling(14, min_periods=14).min()
    out["stoch_14"] = 2 * (c - low_14) / (high_14 - low_14 + _EPS) - 1
    for w in (10, 21, 63):
        sma = c.rolling(w, min_periods=w).mean()
        out[f"dist_sma_{w}"] = np.log(c / sma) / (vol * np.sqrt(w) + _EPS)
    ema_fast = c.ewm(span=12, min_periods=26, adjust=False).mean()
    ema_slow = c.ewm(span=26, min_periods=26, adjust=False).mean()
    out["macd"] = np.log(ema_fast / ema_slow) / (vol + _EPS)
    mean_21, std_21 = c.rolling(21, min_periods=21).mean(), c.rolling(21, min_periods=21).std()
    out["bollinger_z_21"] = (c - mean_21) / (std_21 + _EPS)

    log_v = np.log1p(v)
    out["volume_surprise_21"] = log_v - log_v.rolling(21, min_periods=21).median()
    out["volume_z_63"] = (log_v - log_v.rolling(63, min_periods=63).mean()) / (
        log_v.rolling(63, min_periods=63).std() + _EPS
    )

    bar_range = (h - lo).clip(lower=_EPS)
    out["body_share"] = (c - o) / bar_range
    out["upper_shadow"] = (h - np.maximum(o, c)) / bar_range
    out["lower_shadow"] = (np.minimum(o, c) - lo) / bar_range
    out["gap"] = np.log(o / c.shift(1)) / (vol + _EPS)
    out["autocorr_21"] = ret.rolling(21, min_periods=21).corr(ret.shift(1))
    out["skew_63"] = ret.rolling(63, min_periods=63).skew()

    features = pd.DataFrame(out, index=bars.index)
    features.iloc[:WARMUP_BARS] = np.nan
    return features.replace([np.inf, -np.inf], np.nan)


def feature_names() -> list[str]:
    """The feature columns, in order (computed on a tiny synthetic frame)."""
    n = WARMUP_BARS + 2
    close = np.linspace(100, 101, n)
    frame = pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": np.full(n, 1e6),
        }
    )
    return list(symbol_features(frame).columns)


def build_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Features for many symbols: symbol, ts, then one column per feature."""
    parts = []
    for symbol, group in bars.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        feats = symbol_features(group.reset_index(drop=True))
        feats.insert(0, "ts", group["ts"].to_numpy())
        feats.insert(0, "symbol", symbol)
        parts.append(feats)
    return pd.concat(parts, ignore_index=True)
