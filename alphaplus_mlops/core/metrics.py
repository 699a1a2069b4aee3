"""Classification metrics of predicted probabilities, via scikit-learn."""

from __future__ import annotations

import numpy as np
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


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, F1, ROC-AUC, log loss and Brier score of P(y=1) against 0/1 labels."""
    y, p = _checked(y_true, proba)
    predicted = (p > 0.5).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "roc_auc": _roc_auc(y, p),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "n": int(len(y)),
        "positive_rate": float(y.mean()),
    }
