"""How much the training asset path costs over a bare library fit, per family.

For N rows × F features (default 500k × 40, synthetic with a planted signal) it measures,
side by side in one run:
  bare     the library's own fit with the family's parameters (CatBoostClassifier.fit,
           xgboost.train, lightgbm.train), nothing else;
  wrapper  the family's fit through the project's interface, with the progress callback;
  asset    the trained_model asset materialized by Dagster: walk-forward CV (cv_splits
           folds), the final fit, native + ONNX export, artifact store and database writes.
and prints ratios to bare. The asset ratio includes the CV fits by design: that is the
price of out-of-fold evidence. Run: .venv/bin/python bench/train_overhead.py [--rows N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psycopg

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.defs import build_resources
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.assets.training import trained_model, training_dataset
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.families.base import FAMILIES, get_family
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.db import resolve_database_url, with_database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.registry import record_dataset, write_asset_value
from alphaplus_mlops.training import KEY_COLUMNS, Dataset


def synthetic_dataset(rows: int, features: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    logit = 0.4 * x[:, 0] - 0.3 * x[:, 1] + 0.2 * x[:, 2] * x[:, 3]
    y = (logit + rng.logistic(size=rows) > 0).astype(int)
    n_symbols = 50
    per_symbol = rows // n_symbols
    ts = pd.bdate_range("1990-01-01", periods=per_symbol, tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": np.tile([f"S{i:02d}" for i in range(n_symbols)], per_symbol),
            "ts": np.repeat(ts, n_symbols),
        }
    )
    frame = frame.iloc[: len(x)]
    x, y = x[: len(frame)], y[: len(frame)]
    frame["t0"] = frame["ts"]
    frame["t1"] = frame["ts"] + pd.Timedelta(days=1)
    frame["label"] = y
    frame["forward_return"] = rng.normal(0, 0.01, len(frame))
    frame["close"] = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(frame))))
    names = [f"x{i:02d}" for i in range(x.shape[1])]
    frame = pd.concat([frame[KEY_COLUMNS], pd.DataFrame(x, columns=names)], axis=1)
    return Dataset(frame, names, LabelConfig(horizon=1))


def bare_fit(family: str, x: np.ndarray, y: np.ndarray, params: dict) -> None:
    if family == "catboost":
        from catboost import CatBoostClassifier

        CatBoostClassifier(**params, verbose=False, allow_writing_files=False).fit(x, y)
    elif family == "xgboost":
        import xgboost as xgb

        xgb.train(
            {
                "objective": "binary:logistic",
                "max_depth": params["max_depth"],
                "eta": params["learning_rate"],
                "subsample": params["subsample"],
                "colsample_bytree": params["colsample_bytree"],
                "min_child_weight": params["min_child_weight"],
                "seed": params["random_state"],
            },
            xgb.DMatrix(x, label=y),
            num_boost_round=params["n_estimators"],
        )
    else:
        import lightgbm as lgb

        train = {k: v for k, v in params.items() if k != "n_estimators"}
        lgb.train(
            {**train, "objective": "binary", "verbose": -1, "deterministic": True},
            lgb.Dataset(x, label=y),
            num_boost_round=params["n_estimators"],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--cv-splits", type=int, default=2)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()

    dataset = synthetic_dataset(args.rows, args.features)
    x, y = dataset.x, dataset.y
    server = resolve_database_url(Settings.from_env())
    name = f"apm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        migrate(url)
        home = Path(tempfile.mkdtemp(prefix="apm-bench-"))
        settings = Settings(database_url=url, home=home)
        resources = build_resources(settings, PostgresResource(database_url=url))
        store = LocalArtifactStore(settings.artifacts_dir)
        stored = store.put_bytes(dataset.to_parquet_bytes(), ".parquet")
        frame = dataset.frame
        record = record_dataset(
            url,
            content_hash=dataset.content_hash(),
            symbols=sorted(frame["symbol"].unique()),
            window_start=frame["ts"].min(),
            window_end=frame["ts"].max(),
            n_rows=len(frame),
            class_balance=dataset.class_balance(),
            feature_names=dataset.features,
            label_config=dataset.label_config.__dict__,
            artifact_uri=stored.uri,
            artifact_sha256=stored.sha256,
            feature_version="synthetic",
        )
        print(
            f"{len(x):,} rows × {x.shape[1]} features, {args.rounds} rounds, "
            f"asset path with {args.cv_splits} CV folds + final fit"
        )
        print(
            f"{'family':<9} {'bare s':>8} {'wrapper s':>9} {'ratio':>6} {'asset s':>8} {'ratio':>6}"
        )
        for family in args.families.split(","):
            impl = get_family(family)
            rounds_key = "iterations" if family == "catboost" else "n_estimators"
            params = {**impl.default_params(), rounds_key: args.rounds}
            start = time.perf_counter()
            bare_fit(family, x, y, params)
            bare = time.perf_counter() - start

            start = time.perf_counter()
            impl.fit(x, y, params, progress=lambda p: None)
            wrapper = time.perf_counter() - start

            write_asset_value(
                url,
                "training_dataset",
                family,
                "bench",
                {
                    "dataset_id": record.id,
                    "content_hash": record.content_hash,
                    "artifact_uri": stored.uri,
                    "artifact_sha256": stored.sha256,
                    "label_config": dataset.label_config.__dict__,
                },
            )
            start = time.perf_counter()
            result = dg.materialize(
                [market_bars, training_dataset, trained_model],
                selection=[trained_model],
                partition_key=family,
                resources=resources,
                run_config={
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                    "ops": {
                        "trained_model": {
                            "config": {"n_estimators": args.rounds, "cv_splits": args.cv_splits}
                        }
                    },
                },
            )
            asset_seconds = time.perf_counter() - start
            assert result.success
            print(
                f"{family:<9} {bare:>8.2f} {wrapper:>9.2f} {wrapper / bare:>6.2f} "
                f"{asset_seconds:>8.2f} {asset_seconds / bare:>6.2f}"
            )
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
