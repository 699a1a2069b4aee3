"""Probabilistic and Deflated Sharpe ratios (Bailey & López de Prado, 2012 and 2014), and
the effective number of trials that deflates a Sharpe ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def expected_max_sharpe(
    trial_sharpes: np.ndarray, n_trials: float | None = None, min_variance: float = 0.0
) -> float:
    """S0 = √V·[(1−γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))]: the best Sharpe N unskilled
    trials would show by luck.

    V is the variance of the trials' Sharpe ratios, at least ``min_variance`` (a Sharpe
    estimated on T bars scatters by about 1/T around its truth even with no skill, so a few
    trials that happen to agree do not make the benchmark vanish). N is ``n_trials`` (the
    effective number of independent trials, see :func:`effective_trials`), default the
    count of ``trial_sharpes``. One trial or fewer: 0, no selection to correct for.
    """
    s = np.asarray(trial_sharpes, dtype=float)
    s = s[np.isfinite(s)]
    n = float(len(s) if n_trials is None else n_trials)
    if n <= 1 or len(s) == 0:
        return 0.0
    variance = max(float(s.var(ddof=1)) if len(s) > 1 else 0.0, min_variance)
    return float(
        np.sqrt(variance)
        * (
            (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1.0 / n)
            + EULER_GAMMA * stats.norm.ppf(1 - 1.0 / (n * np.e))
        )
    )


def effective_trials(n_trials: int, mean_correlation: float) -> float:
    """N_eff = ρ̄ + (1 − ρ̄)·N: N trials whose returns correlate ρ̄ on average are worth
    fewer independent ones (López de Prado 2018, ch. 8). ρ̄ is clipped to [0, 1]."""
    if n_trials < 1:
        raise ValueError("at least one trial")
    rho = min(max(float(mean_correlation), 0.0), 1.0) if np.isfinite(mean_correlation) else 0.0
    return rho + (1.0 - rho) * n_trials


def mean_pairwise_correlation(series: list[pd.Series], min_overlap: int = 30) -> float:
    """Mean correlation of every pair of return series (indexed by time) over the times
    both have; pairs overlapping on fewer than ``min_overlap`` times are left out. NaN
    when no pair qualifies."""
    if len(series) < 2:
        return float("nan")
    # Aligned on time; pandas correlates each pair over the times both have.
    table = pd.concat(series, axis=1, ignore_index=True)
    matrix = table.corr(min_periods=min_overlap).to_numpy()
    pairs = matrix[np.triu_indices(len(series), k=1)]
    pairs = pairs[np.isfinite(pairs)]
    return float(pairs.mean()) if len(pairs) else float("nan")


def deflated_sharpe(
    returns: np.ndarray, trial_sharpes: np.ndarray, n_trials: float | None = None
) -> float:
    """PSR against the Sharpe one would expect from the best of N unskilled trials.

    ``trial_sharpes`` are the non-annualized Sharpe ratios of every trial so far, this one
    included; ``n_trials`` their effective number (default: their count). With one trial
    the benchmark is 0, i.e. DSR = PSR(0).
    """
    r = np.asarray(returns, dtype=float)
    floor = 1.0 / max(len(r) - 1, 1)
    return probabilistic_sharpe(r, expected_max_sharpe(trial_sharpes, n_trials, floor))
