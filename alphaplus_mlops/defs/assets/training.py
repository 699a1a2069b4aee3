"""Dataset → trained model → evaluation, one partition per model family."""

import io
import resource
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops import run_tags
from alphaplus_mlops.core.features import FEATURE_VERSION
from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.metrics import classification_metrics
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.sources import inclusive_end
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.progress import TrainingProgress
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families.base import get_family
from alphaplus_mlops.store import deployment, registry
from alphaplus_mlops.store.bars import load_bars
from alphaplus_mlops.training import Dataset, Parent, build_dataset, cross_validate, final_fit
from alphaplus_mlops.versioning import code_version


class DatasetConfig(dg.Config):
    symbols: list[str] = Field(default=[], description="Symbols to pool; empty means all.")
    start: str | None = Field(default=None, description="First bar (ISO date), inclusive.")
    end: str | None = Field(default=None, description="Last bar (ISO date), inclusive.")
    window_bars: int | None = Field(
        default=None, description="Keep only the last N labelled bars per symbol (rolling)."
    )
    label_method: str = Field(default="fixed_horizon", description="or 'triple_barrier'")
    horizon: int = Field(default=1, description="Label horizon in bars.")
    threshold: float = Field(default=0.0, description="tau, or k of sigma when vol_scaled.")
    vol_scaled: bool = False
    profit_take: float = 1.0
    stop_loss: float = 1.0
    shuffle_labels: bool = Field(
        default=False,
        description="Sabotage drill: permute the labels so the model can learn nothing. "
        "The quality gates must reject what comes out.",
    )


@dg.asset(
    partitions_def=family_partitions,
    deps=[market_bars],
    io_manager_key="handoff_io_manager",
    group_name="training",
    kinds={"pandas", "parquet"},
    description="Features and labels from market_bars, stored as content-addressed Parquet "
    "and recorded in training_data_management (one row per distinct content).",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: DatasetConfig,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.Output[dict]:
    try:
        label_config = LabelConfig(
            method=config.label_method,
            horizon=config.horizon,
            threshold=config.threshold,
            vol_scaled=config.vol_scaled,
            profit_take=config.profit_take,
            stop_loss=config.stop_loss,
        )
    except ValueError as exc:
        raise dg.Failure(f"invalid label configuration: {exc}") from exc
    symbols = config.symbols or registry.all_symbols(postgres.url)
    bars = load_bars(
        postgres.url,
        symbols,
        pd.Timestamp(config.start, tz="UTC") if config.start else None,
        inclusive_end(config.end) if config.end else None,
    )
    missing = sorted(set(symbols) - set(bars["symbol"]))
    if bars.empty or missing:
        raise dg.Failure(f"no bars in the requested window for {missing or symbols}")
    dataset = build_dataset(bars, label_config, config.window_bars)
    if config.shuffle_labels:
        dataset = dataset.with_shuffled_labels(seed=0)
        context.log.warning("labels shuffled on purpose (shuffle_labels=true)")
    stored = artifacts.store.put_bytes(dataset.to_parquet_bytes(), ".parquet")
    frame = dataset.frame
    record = registry.record_dataset(
        postgres.url,
        content_hash=dataset.content_hash(),
        symbols=sorted(frame["symbol"].unique().tolist()),
        window_start=frame["ts"].min().to_pydatetime(),
        window_end=frame["ts"].max().to_pydatetime(),
        n_rows=len(frame),
        class_balance=dataset.class_balance(),
        feature_names=dataset.features,
        label_config=label_config.__dict__,
        artifact_uri=stored.uri,
        artifact_sha256=stored.sha256,
        feature_version=FEATURE_VERSION,
    )
    value = {
        "dataset_id": record.id,
        "content_hash": record.content_hash,
        "artifact_uri": stored.uri,
        "artifact_sha256": stored.sha256,
        "label_config": label_config.__dict__,
    }
    return dg.Output(
        value,
        metadata={
            "dataset_id": record.id,
            "content_hash": record.content_hash,
            "new_dataset_row": record.created,
            "rows": len(frame),
            "symbols": sorted(frame["symbol"].unique().tolist()),
            "window": f"{frame['ts'].min().date()} .. {frame['ts'].max().date()}",
            "class_balance": dataset.class_balance(),
            "features": len(dataset.features),
            "label": f"{label_config.method}, horizon {label_config.horizon}",
            "artifact": dg.MetadataValue.path(stored.uri),
        },
    )


class TrainingConfig(dg.Config):
    n_estimators: int = Field(default=300, description="Boosting rounds per fit.")
    learning_rate: float = 0.05
    max_depth: int = Field(default=4, description="Tree depth (LightGBM: 2^depth-1 leaves).")
    cv_splits: int = Field(default=4, description="Walk-forward folds.")
    cv_gap: int | None = Field(
        default=None, description="Bars between train and test; default: the label horizon."
    )
    cv_embargo: int | None = Field(default=None, description="Embargo bars; default: horizon.")
    trigger_type: str = Field(default="manual", description="Overridden by the run's tags.")
    priority: int = 0
    requested_by: str = ""
    reason: str = ""


def family_params(family: str, config: TrainingConfig) -> dict:
    if family == "catboost":
        return {
            "iterations": config.n_estimators,
            "learning_rate": config.learning_rate,
            "depth": config.max_depth,
        }
    if family == "xgboost":
        return {
            "n_estimators": config.n_estimators,
            "learning_rate": config.learning_rate,
            "max_depth": config.max_depth,
        }
    return {
        "n_estimators": config.n_estimators,
        "learning_rate": config.learning_rate,
        "num_leaves": 2**config.max_depth - 1,
    }


def load_dataset(artifacts: ArtifactStoreResource, ref: dict) -> Dataset:
    data = artifacts.store.get_bytes(ref["artifact_uri"], ref["artifact_sha256"])
    return Dataset.from_parquet_bytes(data, LabelConfig(**ref["label_config"]))


def load_model(artifacts: ArtifactStoreResource, family, version: dict):
    """A version's native model, after checking its file against the recorded SHA-256."""
    return family.load_native(
        artifacts.store.get_bytes(version["native_uri"], version["native_sha256"])
    )


def _xgboost_parent(url: str, artifacts: ArtifactStoreResource, features: list[str]):
    """The champion's booster when its feature schema matches, else (None, None, reason)."""
    champion = registry.current_champion(url, "xgboost")
    if champion is None:
        return None, None, "no champion yet: full retrain"
    if list(champion["feature_names"]) != features:
        return None, None, "champion's feature schema differs: full retrain"
    parent = Parent(
        model=load_model(artifacts, get_family("xgboost"), champion),
        trained_until=pd.Timestamp(champion["dataset_window_end"]),
        horizon=int((champion["label_config"] or {}).get("horizon", 1)),
    )
    return parent, str(champion["id"]), f"parent v{champion['version']}"


@dg.asset(
    partitions_def=family_partitions,
    io_manager_key="handoff_io_manager",
    group_name="training",
    pool="training",
    kinds={"catboost", "xgboost", "lightgbm", "onnx"},
    description="Walk-forward CV (out-of-fold predictions kept), then the final fit; native "
    "and ONNX files in the artifact store; a candidate row in model_versioning.",
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_dataset: dict,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.Output[dict]:
    url, family_name = postgres.url, context.partition_key
    family = get_family(family_name)
    dataset = load_dataset(artifacts, training_dataset)
    horizon = dataset.label_config.horizon
    params = {**family.default_params(), **family_params(family_name, config)}
    splitter = WalkForward(
        n_splits=config.cv_splits,
        gap=horizon if config.cv_gap is None else config.cv_gap,
        embargo=horizon if config.cv_embargo is None else config.cv_embargo,
        min_train_size=50,
    )
    trigger = run_trigger(context, config)
    deployment.mirror_run(
        url,
        run_id=context.run.run_id,
        job_name=context.run.job_name,
        partition_key=family_name,
        status="STARTED",
        tags=dict(context.run.tags),
        **trigger.mirror_fields(),
    )
    job_id = registry.start_training_job(
        url,
        family=family_name,
        run_id=context.run.run_id,
        dataset_id=training_dataset["dataset_id"],
        config={"params": params, "cv": splitter.__dict__},
        **trigger.job_fields(),
    )
    rounds = int(params.get("iterations", params.get("n_estimators")))
    progress = TrainingProgress(context, url, job_id, (config.cv_splits + 1) * rounds)
    with recorded_training_job(url, job_id, progress) as usage:
        parent, parent_id, parent_note = _parent_for(family_name, url, artifacts, dataset)
        cv = cross_validate(
            family, dataset, params, splitter, _staged(progress, rounds), parent=parent
        )
        progress.stage(config.cv_splits * rounds)
        fitted = final_fit(
            family, dataset, params, progress, init_model=parent.model if parent else None
        )
        progress.flush()
        train_seconds = usage.wall_seconds()
        native, onnx = _store_model_files(artifacts, family, fitted.model, len(dataset.features))
        oof = artifacts.store.put_bytes(_parquet(cv.oof), ".parquet")
        parent_id = parent_id if fitted.training_path == "incremental" else None
        notes = [n for n in [parent_note, *fitted.notes] if n]
        if cv.warm_started_folds:
            notes.append(f"CV folds {cv.warm_started_folds} continued from the parent too")
        version_id, version = registry.register_model_version(
            url,
            family=family_name,
            dataset_id=training_dataset["dataset_id"],
            training_job_id=job_id,
            parent_version_id=parent_id,
            params=fitted.params,
            feature_names=dataset.features,
            code_version=code_version(),
            native_uri=native.uri,
            native_sha256=native.sha256,
            onnx_uri=onnx.uri,
            onnx_sha256=onnx.sha256,
            training_path=fitted.training_path,
            oof_uri=oof.uri,
            oof_sha256=oof.sha256,
            train_seconds=train_seconds,
            notes=notes,
        )
    value = {
        "model_version_id": version_id,
        "family": family_name,
        "version": version,
        "dataset_id": training_dataset["dataset_id"],
        "training_job_id": job_id,
    }
    return dg.Output(
        value,
        metadata={
            "model_version_id": version_id,
            "version": version,
            "training_path": fitted.training_path,
            "parent_version_id": parent_id or "",
            "notes": "; ".join(notes),
            "oof_rows": len(cv.oof),
            "folds (train, test)": str(cv.fold_sizes),
            "oof_roc_auc": classification_metrics(cv.oof["label"], cv.oof["proba"])["roc_auc"],
            "train_seconds": round(train_seconds, 2),
            "cpu_seconds": round(usage.cpu_seconds(), 2),
            "peak_rss_mb": round(progress.peak_rss / 2**20, 1),
            "params": dg.MetadataValue.json(registry.json_safe(fitted.params)),
            "native_sha256": native.sha256,
            "onnx_sha256": onnx.sha256,
        },
    )


@dataclass(frozen=True)
class RunTrigger:
    """Why this run exists: from its tags (schedule, sensor, CLI), else the launchpad config."""

    trigger_type: str
    trigger_id: str | None
    priority: int
    requested_by: str | None
    reason: str | None

    def mirror_fields(self) -> dict:
        return {
            "trigger_type": self.trigger_type,
            "trigger_id": self.trigger_id,
            "priority": self.priority,
        }

    def job_fields(self) -> dict:
        return {**self.mirror_fields(), "requested_by": self.requested_by, "reason": self.reason}


def run_trigger(context: dg.AssetExecutionContext, config: TrainingConfig) -> RunTrigger:
    tags = context.run.tags
    return RunTrigger(
        trigger_type=tags.get(run_tags.TRIGGER_TYPE, config.trigger_type),
        trigger_id=deployment.as_uuid(tags.get(run_tags.TRIGGER_ID)),
        priority=int(tags.get(run_tags.PRIORITY, config.priority)),
        requested_by=tags.get(run_tags.REQUESTED_BY, config.requested_by) or None,
        reason=tags.get(run_tags.REASON, config.reason) or None,
    )


class _Usage:
    def __init__(self):
        self.started = time.monotonic()
        self.cpu_start = resource.getrusage(resource.RUSAGE_SELF)

    def wall_seconds(self) -> float:
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        now = resource.getrusage(resource.RUSAGE_SELF)
        return (now.ru_utime - self.cpu_start.ru_utime) + (now.ru_stime - self.cpu_start.ru_stime)


@contextmanager
def recorded_training_job(url: str, job_id: str, progress: TrainingProgress):
    """Closes the job row: succeeded, or failed with the error, with CPU and peak RSS."""
    usage = _Usage()
    try:
        yield usage
    except Exception as exc:
        registry.finish_training_job(
            url,
            job_id,
            status="failed",
            cpu_seconds=usage.cpu_seconds(),
            peak_rss=progress.peak_rss,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    registry.finish_training_job(
        url, job_id, status="succeeded", cpu_seconds=usage.cpu_seconds(), peak_rss=progress.peak_rss
    )


def _parent_for(family_name: str, url: str, artifacts: ArtifactStoreResource, dataset: Dataset):
    if family_name != "xgboost":
        return None, None, None
    return _xgboost_parent(url, artifacts, dataset.features)


def _store_model_files(artifacts: ArtifactStoreResource, family, model, n_features: int):
    """The native file and the ONNX export, content-addressed in the artifact store."""
    with tempfile.TemporaryDirectory() as tmp:
        native_path = Path(tmp) / f"model{family.native_suffix}"
        onnx_path = Path(tmp) / "model.onnx"
        family.save_native(model, native_path)
        family.export_onnx(model, n_features, onnx_path)
        return artifacts.store.put_file(native_path), artifacts.store.put_file(onnx_path)


def _staged(progress: TrainingProgress, rounds: int):
    """Progress across the CV folds: each new fit continues the run-wide count."""
    state = {"fit": 0, "last": 0}

    def report(p):
        if p.iteration <= state["last"]:
            state["fit"] += 1
            progress.stage(state["fit"] * rounds)
        state["last"] = p.iteration
        progress(p)

    return report


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
