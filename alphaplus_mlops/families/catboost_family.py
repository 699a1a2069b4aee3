"""CatBoost: full retrain every time; ONNX through CatBoost's own exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from catboost import CatBoostClassifier

from alphaplus_mlops.families.base import (
    FitResult,
    Progress,
    ProgressCallback,
    TrainingKnobs,
    finite_or_nan,
)


class _ProgressHook:
    def __init__(self, total: int, progress: ProgressCallback | None):
        self.total, self.progress = total, progress

    def after_iteration(self, info) -> bool:
        if self.progress is not None:
            source = "validation" if "validation" in info.metrics else "learn"
            history = info.metrics.get(source, {}).get("Logloss", [])
            value = finite_or_nan(history[-1]) if history else float("nan")
            self.progress(Progress(info.iteration, self.total, f"{source}_logloss", value))
        return True


class CatBoostFamily:
    name = "catboost"
    native_suffix = ".cbm"
    continues_from_champion = False
    rounds_key = "iterations"

    def params_for(self, knobs: TrainingKnobs) -> dict[str, Any]:
        return {
            "iterations": knobs.rounds,
            "learning_rate": knobs.learning_rate,
            "depth": knobs.max_depth,
        }

    def default_params(self) -> dict[str, Any]:
        return {
            "iterations": 300,
            "depth": 4,
            "learning_rate": 0.05,
            "l2_leaf_reg": 3.0,
            "random_seed": 0,
            "thread_count": -1,
        }

    def fit(
        self,
        x,
        y,
        params,
        *,
        progress=None,
        init_model=None,
        eval_set=None,
        early_stopping_rounds=None,
    ) -> FitResult:
        merged = {**self.default_params(), **params}
        stopping = bool(eval_set is not None and early_stopping_rounds)
        model = CatBoostClassifier(
            **merged,
            loss_function="Logloss",
            verbose=False,
            allow_writing_files=False,
            early_stopping_rounds=early_stopping_rounds if stopping else None,
        )
        model.fit(
            np.asarray(x, dtype=np.float32),
            np.asarray(y, dtype=int),
            eval_set=eval_set,
            callbacks=[_ProgressHook(merged["iterations"], progress)],
        )
        notes = [] if init_model is None else ["catboost always retrains in full"]
        best = model.get_best_iteration() + 1 if stopping else None
        return FitResult(model, merged, "full", model.tree_count_, notes, best)

    def predict_proba(self, model: CatBoostClassifier, x: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(x, dtype=np.float32))[:, 1]

    def save_native(self, model: CatBoostClassifier, path: Path) -> None:
        model.save_model(str(path), format="cbm")

    def load_native(self, data: bytes) -> CatBoostClassifier:
        model = CatBoostClassifier()
        model.load_model(blob=data, format="cbm")
        return model

    def feature_importance(self, model: CatBoostClassifier, n_features: int) -> np.ndarray:
        return np.asarray(model.get_feature_importance(), dtype=float)

    def export_onnx(self, model: CatBoostClassifier, n_features: int, path: Path) -> None:
        model.save_model(
            str(path),
            format="onnx",
            export_parameters={"onnx_domain": "ai.catboost", "onnx_model_version": 1},
        )
