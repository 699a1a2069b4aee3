"""Paired tests of a candidate against the champion on the same bars.

Both models answer the same bars, so their differences are compared bar by bar, which
removes the market's own noise from the comparison. Every test reports a z statistic
oriented so that positive means "the candidate is better", with one-sided p-values both
ways; a decision rule reads ``p_better`` to promote and ``p_worse`` to turn a candidate
down.

- Net return: the per-bar difference of net strategy returns, its mean over a Newey-West
  (HAC) standard error, because daily strategy returns are autocorrelated (volatility
  clusters, overlapping labels) and a plain standard error would overstate the evidence.
- Log loss: Diebold-Mariano, the same HAC mean test on the per-bar loss differential.
- ROC-AUC: DeLong's test for two correlated AUCs on the same labels (DeLong, DeLong and
  Clarke-Pearson 1988; the midrank form of Sun and Xu 2014). No maintained Python library
  ships it (scipy, statsmodels and scikit-learn do not), hence the twenty lines below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    method: str
    estimate: float
    """Candidate minus champion, in the metric's own units (for log loss: champion minus
    candidate, so that positive is better here too)."""
    std_error: float
    z: float
    """estimate / std_error; positive: the candidate is better."""
    p_better: float
    """One-sided p-value of "the candidate is better"."""
    p_worse: float
    """One-sided p-value of "the candidate is worse"."""
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def _from_z(method: str, estimate: float, std_error: float, n: int) -> PairedTest:
    if std_error > 0 and math.isfinite(std_error):
        z = estimate / std_error
    else:
        # No variation in the difference: identical answers are no evidence either way.
        z = 0.0 if estimate == 0 else math.copysign(math.inf, estimate)
    return PairedTest(
        method, float(estimate), float(std_error), float(z), float(stats.norm.sf(z)),
        float(stats.norm.cdf(z)), int(n),
    )  # fmt: skip


def newey_west_lags(n: int) -> int:
    """The usual automatic bandwidth, floor(4·(n/100)^(2/9)) (Newey and West 1994)."""
    return int(math.floor(4 * (n / 100) ** (2 / 9))) if n > 0 else 0


def hac_mean_test(differences: np.ndarray, lags: int | None = None, method: str = "hac"):
    """Is the mean of ``differences`` above zero? Newey-West standard error (Bartlett
    kernel, ``lags`` default :func:`newey_west_lags`, small-sample corrected)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 3:
        raise ValueError(f"a paired test needs at least 3 bars, got {len(d)}")
    estimate = float(d.mean())
    if np.allclose(d, d[0], rtol=0, atol=0):
        return _from_z(method, estimate, 0.0, len(d))
    lags = newey_west_lags(len(d)) if lags is None else lags
    fit = sm.OLS(d, np.ones((len(d), 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}
    )
    return _from_z(method, estimate, float(fit.bse[0]), len(d))


def delong_auc_covariance(labels: np.ndarray, scores: list[np.ndarray]):
    """The AUCs of several scorings of the same labels and DeLong's covariance matrix."""
    y = np.asarray(labels, dtype=int)
    positives, negatives = y == 1, y == 0
    m, n = int(positives.sum()), int(negatives.sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs two of each class, got {m} positives, {n} negatives")
    aucs, v_pos, v_neg = [], [], []
    for score in scores:
        s = np.asarray(score, dtype=float)
        rank_all = stats.rankdata(s)
        rank_pos = stats.rankdata(s[positives])
        rank_neg = stats.rankdata(s[negatives])
        aucs.append((rank_all[positives].sum() - m * (m + 1) / 2) / (m * n))
        # Structural components: for each positive, the share of negatives it outranks;
        # for each negative, the share of positives that outrank it (ties count half).
        v_pos.append((rank_all[positives] - rank_pos) / n)
        v_neg.append(1.0 - (rank_all[negatives] - rank_neg) / m)
    cov = np.atleast_2d(np.cov(v_pos)) / m + np.atleast_2d(np.cov(v_neg)) / n
    return np.asarray(aucs), cov


def delong_paired_test(
    labels: np.ndarray, candidate: np.ndarray, champion: np.ndarray
) -> PairedTest:
    """ROC-AUC of the candidate minus the champion's, on the same rows (DeLong)."""
    aucs, cov = delong_auc_covariance(labels, [candidate, champion])
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return _from_z("delong_auc", aucs[0] - aucs[1], math.sqrt(max(variance, 0.0)), len(labels))


def log_loss_per_row(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))
