"""A small fourth family for the tests: logistic regression (scikit-learn, skl2onnx).

It uses nothing but the families/ interface and registry, as a new family would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from alphaplus_mlops.families import TrainingKnobs
from alphaplus_mlops.families.base import FitResult, Progress


class LogisticFamily:
    name = "logistic"
    native_suffix = ".json"
    continues_from_champion = False
    rounds_key = None  # one solve, no boosting rounds to stop early

    def default_params(self) -> dict[str, Any]:
        return {"C": 0.1, "max_iter": 200}

    def params_for(self, knobs: TrainingKnobs) -> dict[str, Any]:
        return {"max_iter": max(knobs.rounds, 50)}

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
        model = LogisticRegression(C=merged["C"], max_iter=merged["max_iter"])
        model.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=int))
        if progress is not None:
            # One solve: report the run's whole share of iterations at once.
            rounds = int(merged["max_iter"])
            progress(Progress(rounds, rounds, "train_logloss", float("nan")))
        return FitResult(model, merged, "full", int(model.n_iter_[0]))

    def predict_proba(self, model: LogisticRegression, x: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(x, dtype=np.float32))[:, 1].astype(np.float64)

    def save_native(self, model: LogisticRegression, path: Path) -> None:
        state = {
            "coef": model.coef_.tolist(),
            "intercept": model.intercept_.tolist(),
            "classes": model.classes_.tolist(),
        }
        Path(path).write_text(json.dumps(state))

    def load_native(self, data: bytes) -> LogisticRegression:
        state = json.loads(data)
        model = LogisticRegression()
        model.coef_ = np.array(state["coef"])
        model.intercept_ = np.array(state["intercept"])
        model.classes_ = np.array(state["classes"])
        return model

    def export_onnx(self, model: LogisticRegression, n_features: int, path: Path) -> None:
        onnx_model = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        Path(path).write_bytes(onnx_model.SerializeToString())
