"""XGBoost: continues boosting from the champion's booster when the schema matches.

Continuation adds ``n_estimators`` rounds to the parent's trees on the new data; with no
parent, or a parent trained on other features, it retrains in full and says why.
ONNX through onnxmltools, which wants the features named f0, f1, ...: boosters here are
trained on plain arrays, so they carry no other names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from alphaplus_mlops.families.base import (
    FitResult,
    Progress,
    ProgressCallback,
    TrainingKnobs,
    finite_or_nan,
)


class _ProgressHook(xgb.callback.TrainingCallback):
    def __init__(self, total: int, progress: ProgressCallback | None):
        super().__init__()
        self.total, self.progress = total, progress
        self.done = 0  # epochs count on from a parent's rounds; progress counts this fit's

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.done += 1
        if self.progress is not None:
            name, value = "train_logloss", float("nan")
            for data_name, metrics in evals_log.items():
                if "logloss" in metrics:
                    name, value = f"{data_name}_logloss", finite_or_nan(metrics["logloss"][-1])
            self.progress(Progress(self.done, self.total, name, value))
        return False


class XGBoostFamily:
    name = "xgboost"
    native_suffix = ".ubj"
    continues_from_champion = True

    def params_for(self, knobs: TrainingKnobs) -> dict[str, Any]:
        return {
            "n_estimators": knobs.rounds,
            "learning_rate": knobs.learning_rate,
            "max_depth": knobs.max_depth,
        }

    def default_params(self) -> dict[str, Any]:
        return {
            "n_estimators": 300,
            "max_depth": 4,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 5.0,
            "random_state": 0,
            "n_jobs": None,
        }

    def fit(self, x, y, params, *, progress=None, init_model=None, eval_set=None) -> FitResult:
        merged = {**self.default_params(), **params}
        rounds = int(merged["n_estimators"])
        booster_params = {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "max_depth": merged["max_depth"],
            "eta": merged["learning_rate"],
            "subsample": merged["subsample"],
            "colsample_bytree": merged["colsample_bytree"],
            "min_child_weight": merged["min_child_weight"],
            "seed": merged["random_state"],
        }
        if merged.get("n_jobs"):
            booster_params["nthread"] = merged["n_jobs"]
        x = np.asarray(x, dtype=np.float32)
        train = xgb.DMatrix(x, label=np.asarray(y, dtype=int))
        evals = [(train, "train")]
        if eval_set is not None:
            evals.append((xgb.DMatrix(np.asarray(eval_set[0], np.float32), eval_set[1]), "valid"))

        parent, path, notes = None, "full", []
        if init_model is not None:
            if init_model.num_features() == x.shape[1]:
                parent, path = init_model, "incremental"
                notes.append(
                    f"continued from a parent with {init_model.num_boosted_rounds()} rounds"
                )
            else:
                notes.append(
                    f"parent has {init_model.num_features()} features, data {x.shape[1]}: "
                    "full retrain"
                )
        booster = xgb.train(
            booster_params,
            train,
            num_boost_round=rounds,
            evals=evals,
            verbose_eval=False,
            xgb_model=parent,
            callbacks=[_ProgressHook(rounds, progress)],
        )
        return FitResult(
            booster, {**merged, **booster_params}, path, booster.num_boosted_rounds(), notes
        )

    def predict_proba(self, model: xgb.Booster, x: np.ndarray) -> np.ndarray:
        return model.predict(xgb.DMatrix(np.asarray(x, dtype=np.float32))).astype(np.float64)

    def save_native(self, model: xgb.Booster, path: Path) -> None:
        model.save_model(str(path))

    def load_native(self, data: bytes) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster

    def export_onnx(self, model: xgb.Booster, n_features: int, path: Path) -> None:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        unnamed = model.copy()
        unnamed.feature_names = None
        onnx_model = convert_xgboost(
            unnamed, initial_types=[("input", FloatTensorType([None, n_features]))]
        )
        Path(path).write_bytes(onnx_model.SerializeToString())
