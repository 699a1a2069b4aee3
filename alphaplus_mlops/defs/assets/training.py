"""Dataset → trained model → evaluation, one partition per model family."""

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops.core.features import FEATURE_VERSION
from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.metrics import roc_auc
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.sources import inclusive_end
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.defs.training_run import RunTrigger, recorded_training_job
from alphaplus_mlops.distributed.celery_config import QUEUE_TAG, TRAINING_QUEUE
from alphaplus_mlops.families import ModelFamily, TrainingKnobs, family_names, get_family
from alphaplus_mlops.families.base import training_params
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset
from alphaplus_mlops.modeling.fitting import (
    EarlyStopping,
    Parent,
    RefitSchedule,
    cross_validate,
    final_fit,
    refit_blocks,
    refit_predictions,
)
from alphaplus_mlops.modeling.model_files import (
    load_dataset,
    load_model,
    store_frame,
    store_training_files,
)
from alphaplus_mlops.store.artifact_audit import report_unreadable_champion
from alphaplus_mlops.store.artifacts import ArtifactIntegrityError, ArtifactStore
from alphaplus_mlops.store.bars import all_symbols, load_bars
from alphaplus_mlops.store.consistency import unfinished_promotions
from alphaplus_mlops.store.dataset_records import record_dataset
from alphaplus_mlops.store.db import Database, json_safe
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.versions import current_champion, register_model_version
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
    # A promotion a crash left undone is settled before this run judges a new candidate
    # against the family's champion (the reaper does the same every few seconds).
    for finding in unfinished_promotions(
        postgres.db, artifacts.store, family=context.partition_key
    ):
        context.log.warning(f"{finding.line()} -> {finding.repair()}")
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
    symbols = config.symbols or all_symbols(postgres.db)
    bars = load_bars(
        postgres.db,
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
    record = record_dataset(
        postgres.db,
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
        labels_shuffled=config.shuffle_labels,
    )
    value = {
        "dataset_id": record.id,
        "content_hash": record.content_hash,
        "artifact_uri": stored.uri,
        "artifact_sha256": stored.sha256,
        "label_config": label_config.__dict__,
        "feature_version": FEATURE_VERSION,
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
    n_estimators: int = Field(
        default=300, description="Boosting rounds per fit; with early stopping, the most."
    )
    learning_rate: float = 0.05
    max_depth: int = Field(
        default=4, description="Tree depth; each family maps it to its own parameter."
    )
    cv_splits: int = Field(default=4, description="Walk-forward folds.")
    cv_gap: int | None = Field(
        default=None, description="Bars between train and test; default: the label horizon."
    )
    early_stopping_rounds: int = Field(
        default=20,
        description="Stop once the log loss on a purged validation block at the end of each "
        "training window has not improved for this many rounds, then refit on the whole "
        "window with the best number of rounds; 0 turns early stopping off.",
    )
    validation_fraction: float = Field(
        default=0.2, description="Share of each training window's bars held out to stop on."
    )
    trigger_type: str = Field(default="manual", description="Overridden by the run's tags.")
    priority: int = 0
    requested_by: str = ""
    reason: str = ""

    def knobs(self) -> TrainingKnobs:
        return TrainingKnobs(self.n_estimators, self.learning_rate, self.max_depth)

    def stopping(self) -> EarlyStopping | None:
        if self.early_stopping_rounds <= 0:
            return None
        return EarlyStopping(self.early_stopping_rounds, self.validation_fraction)

    def splitter(self, horizon: int) -> WalkForward:
        return WalkForward(
            n_splits=self.cv_splits,
            gap=horizon if self.cv_gap is None else self.cv_gap,
            min_train_size=50,
        )


@dg.asset(
    partitions_def=family_partitions,
    io_manager_key="handoff_io_manager",
    group_name="training",
    pool="training",
    # With the Celery executor, training steps go to the workers listening on "training".
    op_tags={QUEUE_TAG: TRAINING_QUEUE},
    kinds={*family_names(), "onnx"},
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
    db, store = postgres.db, artifacts.store
    family = get_family(context.partition_key)
    dataset = load_dataset(store, training_dataset)
    params = training_params(family, config.knobs())
    splitter = config.splitter(dataset.label_config.horizon)
    rounds = config.n_estimators
    stopping = config.stopping()
    stopping_record = stopping.__dict__ if stopping else None
    fits_per_window = 2 if stopping and family.rounds_key else 1
    champion, not_comparable = comparable_champion(db, family, dataset, training_dataset)
    blocks = []
    if champion is not None:
        schedule = RefitSchedule.from_gate(load_gates(db).get("champion_comparison"))
        blocks = refit_blocks(dataset, champion["dataset_window_end"], schedule)
    with recorded_training_job(
        context,
        db,
        family=family.name,
        dataset_id=training_dataset["dataset_id"],
        config={"params": params, "cv": splitter.__dict__, "early_stopping": stopping_record},
        trigger=RunTrigger.of(context.run, config.model_dump()),
        # With early stopping each window is fitted twice (to stop, then on all of it),
        # the first time for at most this many rounds: an upper bound.
        total_iterations=(config.cv_splits + len(blocks) + 1) * rounds * fits_per_window,
    ) as job:
        parent, parent_id, parent_note = champion_parent(
            db, store, family, champion, not_comparable
        )
        progress = job.progress
        cv = cross_validate(
            family,
            dataset,
            params,
            splitter,
            progress.across_fits(rounds),
            parent=parent,
            stopping=stopping,
        )
        # The candidate's procedure replayed on the bars after the champion's training: what
        # the deployment decision compares with the champion, on bars neither has seen.
        after_champion = refit_predictions(
            family,
            dataset,
            params,
            blocks,
            progress.across_fits(rounds, first_fit=config.cv_splits * fits_per_window),
            parent=parent,
            stopping=stopping,
        )
        first_final = (config.cv_splits + len(blocks)) * fits_per_window
        fitted = final_fit(
            family,
            dataset,
            params,
            progress.across_fits(rounds, first_fit=first_final),
            parent=parent,
            stopping=stopping,
        )
        progress.complete()
        train_seconds = job.usage.wall_seconds()
        native, onnx, oof = store_training_files(
            store, family, fitted.model, len(dataset.features), cv.oof
        )
        comparison = stored_comparison(store, champion, after_champion, len(blocks))
        parent_id = parent_id if fitted.training_path == "incremental" else None
        notes = [n for n in [parent_note, *fitted.notes] if n]
        if cv.warm_started_folds:
            notes.append(f"CV folds {cv.warm_started_folds} continued from the parent too")
        version_id, version = register_model_version(
            db,
            family=family.name,
            dataset_id=training_dataset["dataset_id"],
            training_job_id=job.id,
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
        "family": family.name,
        "version": version,
        "dataset_id": training_dataset["dataset_id"],
        "training_job_id": job.id,
        "champion_comparison": comparison,
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
            "rounds (early stopping)": (
                f"final {fitted.best_rounds}, CV folds {cv.stopping_rounds}"
                if fitted.best_rounds
                else f"{rounds} (early stopping off or window too short)"
            ),
            "folds (train, test)": str(cv.fold_sizes),
            "oof_roc_auc": roc_auc(cv.oof["label"], cv.oof["proba"]),
            "comparison_with_champion": (
                f"{comparison['rows']} rows after champion v{champion['version']}'s training, "
                f"predicted by {comparison['refits']} refits"
                if comparison
                else not_comparable or "no bars after the champion's training to compare on"
            ),
            "train_seconds": round(train_seconds, 2),
            "cpu_seconds": round(job.usage.cpu_seconds(), 2),
            "peak_rss_mb": round(progress.peak_rss / 2**20, 1),
            "params": dg.MetadataValue.json(json_safe(fitted.params)),
            "native_sha256": native.sha256,
            "onnx_sha256": onnx.sha256,
        },
    )


def stored_comparison(
    store: ArtifactStore, champion: dict | None, predictions: pd.DataFrame, refits: int
) -> dict | None:
    """The refits' predictions after the champion's window, stored for model_evaluation."""
    if champion is None or predictions.empty:
        return None
    stored = store_frame(store, predictions)
    return {
        "champion_version_id": str(champion["id"]),
        "predictions_uri": stored.uri,
        "predictions_sha256": stored.sha256,
        "refits": refits,
        "rows": len(predictions),
    }


def comparable_champion(
    db: Database, family: ModelFamily, dataset: Dataset, dataset_ref: dict
) -> tuple[dict | None, str | None]:
    """The family's champion when a candidate on this dataset can be compared with it (and
    continue from it): the same features, feature version and label definition. Otherwise
    (None, why not)."""
    champion = current_champion(db, family.name)
    if champion is None:
        return None, "no champion yet"
    differences = [
        what
        for what, same in (
            ("features", list(champion["feature_names"]) == dataset.features),
            (
                "feature version",
                champion["dataset_feature_version"] == dataset_ref.get("feature_version"),
            ),
            ("label definition", (champion["label_config"] or {}) == dataset_ref["label_config"]),
        )
        if not same
    ]
    if differences:
        return None, f"champion v{champion['version']} differs in {', '.join(differences)}"
    return champion, None


def champion_parent(
    db: Database,
    store: ArtifactStore,
    family: ModelFamily,
    champion: dict | None,
    not_comparable: str | None,
) -> tuple[Parent | None, str | None, str | None]:
    """For a family that continues from its champion: the comparable champion's model, with
    its id and a note; otherwise (None, None, why a full retrain). A champion whose files
    are lost or corrupt is no parent: the retrain goes on in full and an alert is raised."""
    if not family.continues_from_champion:
        return None, None, None
    if champion is None:
        return None, None, f"{not_comparable}: full retrain"
    try:
        model = load_model(store, family, champion)
    except ArtifactIntegrityError as exc:
        return None, None, f"{report_unreadable_champion(db, store, champion, exc)}: full retrain"
    parent = Parent(model=model, trained_until=pd.Timestamp(champion["dataset_window_end"]))
    return parent, str(champion["id"]), f"parent v{champion['version']}"
