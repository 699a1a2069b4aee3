"""XGBoost: continues boosting from the champion's booster when the schema matches.

Continuation adds ``n_estimators`` rounds to the parent's trees on the new data; with no
parent, or a parent trained on other features, it retrains in full and says why.
ONNX through onnxmltools, which wants the features named f0, f1, ...: boosters here are
trained on plain arrays, so they carry no other names.
"""

from __future__ import annotations

from functools import partial
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
    """Reports each round. With a validation set, its logloss (evaluated by xgboost every
    round); else the training logloss, evaluated only when the sink reads it: evaluating
    the training set every round costs about a tenth of the fit."""

    def __init__(self, total: int, progress: ProgressCallback | None, train: xgb.DMatrix):
        super().__init__()
        self.total, self.progress, self.train = total, progress, train
        self.done = 0  # epochs count on from a parent's rounds; progress counts this fit's

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.done += 1
        if self.progress is not None:
            name, value = "train_logloss", float("nan")
            for data_name, metrics in evals_log.items():
                if "logloss" in metrics:
                    name, value = f"{data_name}_logloss", finite_or_nan(metrics["logloss"][-1])
            if not evals_log:
                value = partial(self._train_logloss, model, epoch, self.done)
                if self.done == self.total:
                    value = value()
            self.progress(Progress(self.done, self.total, name, value))
        return False

    def _train_logloss(self, model: xgb.Booster, epoch: int, done: int) -> float:
        """The training logloss while ``done`` is the latest round, else NaN."""
        if done != self.done:
            return float("nan")
        result = model.eval_set([(self.train, "train")], epoch)  # "[epoch]\ttrain-logloss:v"
        return finite_or_nan(result.split("train-logloss:")[1].split()[0])


class XGBoostFamily:
    name = "xgboost"
    native_suffix = ".ubj"
    continues_from_champion = True
    rounds_key = "n_estimators"

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
            # Continuing piles trees onto the parent's: beyond this many in all, retrain.
            "max_total_rounds": 1200,
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
        evals = []
        if eval_set is not None:
            evals.append((xgb.DMatrix(np.asarray(eval_set[0], np.float32), eval_set[1]), "valid"))

        parent, path, notes = None, "full", []
        if init_model is not None:
            inherited = init_model.num_boosted_rounds()
            if init_model.num_features() != x.shape[1]:
                notes.append(
                    f"parent has {init_model.num_features()} features, data {x.shape[1]}: "
                    "full retrain"
                )
            elif inherited + rounds > int(merged["max_total_rounds"]):
                notes.append(
                    f"parent's {inherited} rounds + {rounds} would exceed max_total_rounds "
                    f"{merged['max_total_rounds']}: full retrain"
                )
            else:
                parent, path = init_model, "incremental"
                notes.append(f"continued from a parent with {inherited} rounds")
        booster = xgb.train(
            booster_params,
            train,
            num_boost_round=rounds,
            evals=evals,
            verbose_eval=False,
            xgb_model=parent,
            callbacks=[_ProgressHook(rounds, progress, train)],
            early_stopping_rounds=early_stopping_rounds if evals else None,
        )
        base_rounds = parent.num_boosted_rounds() if parent is not None else 0
        best = None
        if evals and early_stopping_rounds:
            # best_iteration counts from the parent's first round.
            best = max(booster.best_iteration + 1 - base_rounds, 1)
        # n_estimators is what this fit added; total_rounds what the model holds.
        recorded = {**merged, **booster_params, "total_rounds": booster.num_boosted_rounds()}
        return FitResult(booster, recorded, path, booster.num_boosted_rounds(), notes, best)

    def predict_proba(self, model: xgb.Booster, x: np.ndarray) -> np.ndarray:
        # In place: the same predictions as through a DMatrix, without copying x into one.
        return model.inplace_predict(np.asarray(x, dtype=np.float32)).astype(np.float64)

    def save_native(self, model: xgb.Booster, path: Path) -> None:
        model.save_model(str(path))

    def load_native(self, data: bytes) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster

    def feature_importance(self, model: xgb.Booster, n_features: int) -> np.ndarray:
        # Keyed f0, f1, ... (or by name when the booster has names); unused features absent.
        names = model.feature_names or [f"f{i}" for i in range(n_features)]
        gain = model.get_score(importance_type="total_gain")
        return np.array([gain.get(name, 0.0) for name in names], dtype=float)

    def export_onnx(self, model: xgb.Booster, n_features: int, path: Path) -> None:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        # Boosters trained here carry no names; one that does has them cleared on a copy,
        # never on the model being stored. (Copying costs a serialization round trip.)
        unnamed = model
        if model.feature_names is not None:
            unnamed = model.copy()
            unnamed.feature_names = None
        onnx_model = convert_xgboost(
            unnamed, initial_types=[("input", FloatTensorType([None, n_features]))]
        )
        Path(path).write_bytes(onnx_model.SerializeToString())
