"""The interface every model family implements, and what a fit reports back."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

FAMILIES = ("catboost", "xgboost", "lightgbm")


@dataclass(frozen=True)
class Progress:
    iteration: int
    total: int
    metric_name: str
    metric_value: float


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


class ModelFamily(Protocol):
    name: str
    native_suffix: str

    def default_params(self) -> dict[str, Any]: ...

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        params: dict[str, Any],
        *,
        progress: ProgressCallback | None = None,
        init_model: Any | None = None,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> FitResult: ...

    def predict_proba(self, model: Any, x: np.ndarray) -> np.ndarray: ...

    def save_native(self, model: Any, path: Path) -> None: ...

    def load_native(self, data: bytes) -> Any:
        """The model from its native file's bytes (read once, after the checksum check)."""
        ...

    def export_onnx(self, model: Any, n_features: int, path: Path) -> None: ...


def finite_or_nan(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if math.isfinite(number) else float("nan")


def get_family(name: str) -> ModelFamily:
    from alphaplus_mlops.families.catboost_family import CatBoostFamily
    from alphaplus_mlops.families.lightgbm_family import LightGBMFamily
    from alphaplus_mlops.families.xgboost_family import XGBoostFamily

    families = {
        "catboost": CatBoostFamily(),
        "xgboost": XGBoostFamily(),
        "lightgbm": LightGBMFamily(),
    }
    if name not in families:
        raise ValueError(f"unknown model family {name!r}; choose from {list(families)}")
    return families[name]
