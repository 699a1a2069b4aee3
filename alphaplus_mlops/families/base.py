"""The interface every model family implements, and what a fit reports back.

A family is one module in this folder, registered in ``families/__init__.py``; nothing
outside this folder names a family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Progress:
    """One boosting iteration of a fit.

    ``metric`` is the metric's value, or a function that computes it on first read of
    ``metric_value``: a family passes a function where the library would otherwise evaluate
    the training loss on every iteration, so a sink that reads the value only when it
    reports (TrainingProgress: every few seconds) costs the fit no evaluation in between.
    Read it during the callback: once the fit has moved on, a deferred value is NaN.
    """

    iteration: int
    total: int
    metric_name: str
    metric: float | Callable[[], float] = field(repr=False)

    @cached_property
    def metric_value(self) -> float:
        return finite_or_nan(self.metric() if callable(self.metric) else self.metric)


ProgressCallback = Callable[[Progress], None]


@dataclass
class FitResult:
    model: Any
    params: dict[str, Any]
    """Every hyperparameter the library was given, defaults filled in."""
    training_path: str
    """'full' or 'incremental' (continued from a parent model)."""
    n_iterations: int
    notes: list[str] = field(default_factory=list)
    best_rounds: int | None = None
    """With a validation set and early stopping: the rounds this fit added up to its best
    validation loss (what a refit on all rows should use); else None."""


@dataclass(frozen=True)
class TrainingKnobs:
    """The hyperparameters every family understands, as a run's config names them.

    Each family translates them into its library's own names (:meth:`ModelFamily.params_for`).
    """

    rounds: int
    learning_rate: float
    max_depth: int


class ModelFamily(Protocol):
    name: str
    native_suffix: str
    continues_from_champion: bool
    """True: a new version keeps boosting from the champion's model when the feature
    schema matches (incremental training); False: every version is a full retrain."""
    rounds_key: str | None
    """The parameter that holds the number of boosting rounds, which early stopping
    chooses; None for a family without rounds (nothing to stop early)."""

    def default_params(self) -> dict[str, Any]: ...

    def params_for(self, knobs: TrainingKnobs) -> dict[str, Any]:
        """The run's knobs in the library's own parameter names."""
        ...

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        params: dict[str, Any],
        *,
        progress: ProgressCallback | None = None,
        init_model: Any | None = None,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        early_stopping_rounds: int | None = None,
    ) -> FitResult:
        """Fit; with ``eval_set`` and ``early_stopping_rounds``, stop once the validation
        log loss has not improved for that many rounds and report ``best_rounds``."""
        ...

    def predict_proba(self, model: Any, x: np.ndarray) -> np.ndarray: ...

    def save_native(self, model: Any, path: Path) -> None: ...

    def load_native(self, data: bytes) -> Any:
        """The model from its native file's bytes (read once, after the checksum check)."""
        ...

    def export_onnx(self, model: Any, n_features: int, path: Path) -> None: ...


def training_params(family: ModelFamily, knobs: TrainingKnobs) -> dict[str, Any]:
    """The parameters a fit takes for ``knobs``: the family's defaults, overridden by its
    translation of the knobs (train_model, the core replay and the benches alike)."""
    return {**family.default_params(), **family.params_for(knobs)}


def feature_importance(family: Any, model: Any, n_features: int) -> np.ndarray | None:
    """The model's total gain per feature column, normalized to sum 1; None when the family
    does not say (its optional ``feature_importance(model, n_features)``) or nothing
    gained (a model of stumps that never split, say)."""
    measure = getattr(family, "feature_importance", None)
    if measure is None:
        return None
    gains = np.clip(np.asarray(measure(model, n_features), dtype=float), 0.0, None)
    if gains.shape != (n_features,) or not np.isfinite(gains).all() or gains.sum() <= 0:
        return None
    return gains / gains.sum()


def finite_or_nan(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if math.isfinite(number) else float("nan")
