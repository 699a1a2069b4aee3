"""What the features cannot show: the model's own output and the labels it is judged on.

A check of the inputs misses a model whose answers moved (its probabilities, its share of
long signals) or a market whose outcomes moved (the label base rate). These are compared
between the version's out-of-fold rows of the training's last window and its realized live
rows of the latest one, with Evidently's column tests (``column_drift``). They are reported
beside the drift statistic, not in it: the trigger's calibration (bench/trigger_calibration.py)
was measured on the inputs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphaplus_mlops.monitoring.column_drift import ColumnDrift, column_drift

PREDICTION, LABEL = "prediction", "label_base_rate"


@dataclass(frozen=True)
class OutputDrift:
    prediction: ColumnDrift
    label: ColumnDrift
    long_share: tuple[float, float]
    """Share of probabilities above 0.5: out of fold, live."""
    base_rate: tuple[float, float]
    """Share of positive labels: out of fold, live."""

    def sentence(self) -> str:
        moved = [c.column for c in (self.prediction, self.label) if c.drifted]
        return (
            f"long share {self.long_share[0]:.2f} -> {self.long_share[1]:.2f}, label base rate "
            f"{self.base_rate[0]:.2f} -> {self.base_rate[1]:.2f}; drifted: "
            f"{', '.join(moved) or 'none'}"
        )


def output_drift(
    reference_proba: np.ndarray,
    reference_label: np.ndarray,
    live_proba: np.ndarray,
    live_label: np.ndarray,
) -> OutputDrift:
    """Raises ValueError when either side has no rows."""
    p0, y0 = np.asarray(reference_proba, float), np.asarray(reference_label, float)
    p1, y1 = np.asarray(live_proba, float), np.asarray(live_label, float)
    if min(len(p0), len(p1)) == 0:
        raise ValueError("no out-of-fold or no live rows to compare the outputs of")
    return OutputDrift(
        column_drift(PREDICTION, p0, p1),
        column_drift(LABEL, y0, y1),
        (float(np.mean(p0 > 0.5)), float(np.mean(p1 > 0.5))),
        (float(np.mean(y0)), float(np.mean(y1))),
    )
