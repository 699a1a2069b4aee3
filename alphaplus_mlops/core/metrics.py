"""Classification metrics of predicted probabilities, via scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _checked(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError("labels and probabilities must be non-empty 1-d arrays of one length")
    return y, p


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC alone, as classification_metrics computes it (NaN with a single class)."""
    return _roc_auc(*_checked(y_true, proba))


def auc_p_value(y_true: np.ndarray, proba: np.ndarray) -> float:
    """One-sided p-value of "ROC-AUC above 0.5": the Mann-Whitney U test of the positives'
    scores against the negatives' (AUC = U / (n1·n0)), ties corrected, normal
    approximation. Rows are taken as independent. NaN with a single class."""
    y, p = _checked(y_true, proba)
    if len(np.unique(y)) < 2:
        return float("nan")
    test = stats.mannwhitneyu(p[y == 1], p[y == 0], alternative="greater", method="asymptotic")
    return float(test.pvalue)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, F1, ROC-AUC (and the p-value of its excess over 0.5), log loss and Brier
    score of P(y=1) against 0/1 labels."""
    y, p = _checked(y_true, proba)
    predicted = (p > 0.5).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "roc_auc": _roc_auc(y, p),
        "roc_auc_p_value": auc_p_value(y, p),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "n": int(len(y)),
        "positive_rate": float(y.mean()),
    }
