"""LightGBM: full retrain; ONNX through onnxmltools with zipmap off."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from alphaplus_mlops.families.base import (
    FitResult,
    Progress,
    ProgressCallback,
    TrainingKnobs,
    finite_or_nan,
)


def _progress_hook(total: int, progress: ProgressCallback | None):
    """Reports each round. With a validation set, its logloss (evaluated by LightGBM every
    round); else the training logloss, evaluated only when the sink reads it."""
    latest = {"iteration": -1}

    def train_logloss(model: lgb.Booster, iteration: int) -> float:
        if iteration != latest["iteration"]:
            return float("nan")  # the fit has moved on
        for _, metric, result, _ in model.eval_train():
            if metric == "binary_logloss":
                return finite_or_nan(result)
        return float("nan")

    def hook(env: lgb.callback.CallbackEnv) -> None:
        latest["iteration"] = env.iteration
        if progress is None:
            return
        name, value = "train_logloss", float("nan")
        for data_name, metric, result, _ in env.evaluation_result_list or []:
            if metric == "binary_logloss":
                name, value = f"{data_name}_logloss", finite_or_nan(result)
        if not env.evaluation_result_list:
            value = partial(train_logloss, env.model, env.iteration)
            if env.iteration + 1 == env.end_iteration:
                value = value()  # the booster drops its training data when the fit ends
        progress(Progress(env.iteration + 1, total, name, value))

    return hook


class LightGBMFamily:
    name = "lightgbm"
    native_suffix = ".txt"
    continues_from_champion = False
    rounds_key = "n_estimators"

    def params_for(self, knobs: TrainingKnobs) -> dict[str, Any]:
        return {
            "n_estimators": knobs.rounds,
            "learning_rate": knobs.learning_rate,
            "num_leaves": 2**knobs.max_depth - 1,
        }

    def default_params(self) -> dict[str, Any]:
        return {
            "n_estimators": 300,
            "num_leaves": 15,
            "learning_rate": 0.05,
            "min_child_samples": 50,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "seed": 0,
            "num_threads": 0,
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
        rounds = int(merged["n_estimators"])
        train_params = {k: v for k, v in merged.items() if k != "n_estimators"}
        train_params.update(
            objective="binary", metric="binary_logloss", verbose=-1, deterministic=True
        )
        x = np.asarray(x, dtype=np.float32)
        train = lgb.Dataset(x, label=np.asarray(y, dtype=int), free_raw_data=False)
        valid_sets, valid_names = [], []
        if eval_set is not None:
            valid_sets.append(
                lgb.Dataset(np.asarray(eval_set[0], np.float32), eval_set[1], reference=train)
            )
            valid_names.append("valid")
        callbacks = [_progress_hook(rounds, progress)]
        stopping = bool(valid_sets and early_stopping_rounds)
        if stopping:
            callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
        booster = lgb.train(
            train_params,
            train,
            num_boost_round=rounds,
            valid_sets=valid_sets,
            valid_names=valid_names,
            callbacks=callbacks,
        )
        notes = [] if init_model is None else ["lightgbm always retrains in full"]
        best = max(booster.best_iteration, 1) if stopping else None
        return FitResult(
            booster, {**merged, **train_params}, "full", booster.current_iteration(), notes, best
        )

    def predict_proba(self, model: lgb.Booster, x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(np.asarray(x, dtype=np.float32)), dtype=np.float64)

    def save_native(self, model: lgb.Booster, path: Path) -> None:
        model.save_model(str(path))

    def load_native(self, data: bytes) -> lgb.Booster:
        return lgb.Booster(model_str=data.decode())

    def feature_importance(self, model: lgb.Booster, n_features: int) -> np.ndarray:
        return np.asarray(model.feature_importance(importance_type="gain"), dtype=float)

    def export_onnx(self, model: lgb.Booster, n_features: int, path: Path) -> None:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_lightgbm(
            model, initial_types=[("input", FloatTensorType([None, n_features]))], zipmap=False
        )
        Path(path).write_bytes(onnx_model.SerializeToString())
