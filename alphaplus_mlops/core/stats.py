"""Probabilistic and Deflated Sharpe ratios (Bailey & López de Prado, 2012 and 2014)."""

from __future__ import annotations

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def probabilistic_sharpe(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float:
    """PSR(S*) = Φ((Ŝ − S*)·√(T−1) / √(1 − γ3·Ŝ + (γ4 − 1)/4·Ŝ²)), non-annualized Ŝ.

    γ4 is the (non-excess) kurtosis. Returns NaN for fewer than three observations or a
    constant series.
    """
    r = np.asarray(returns, dtype=float)
    if len(r) < 3 or r.std(ddof=1) == 0:
        return float("nan")
    sharpe = r.mean() / r.std(ddof=1)
    skew = stats.skew(r, bias=False)
    kurt = stats.kurtosis(r, fisher=False, bias=False)
    denom = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return float("nan")
    z = (sharpe - benchmark_sharpe) * np.sqrt(len(r) - 1) / np.sqrt(denom)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(trial_sharpes: np.ndarray) -> float:
    """S0 = √Var(Ŝ_n)·[(1−γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))], N trials."""
    s = np.asarray(trial_sharpes, dtype=float)
    s = s[np.isfinite(s)]
    n = len(s)
    if n < 2:
        return 0.0
    spread = np.sqrt(s.var(ddof=1))
    return float(
        spread
        * (
            (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1.0 / n)
            + EULER_GAMMA * stats.norm.ppf(1 - 1.0 / (n * np.e))
        )
    )


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """PSR against the Sharpe one would expect from the best of N unskilled trials.

    ``trial_sharpes`` are the non-annualized Sharpe ratios of every trial so far, this one
    included. With one trial the benchmark is 0, i.e. DSR = PSR(0).
    """
    return probabilistic_sharpe(returns, expected_max_sharpe(trial_sharpes))
