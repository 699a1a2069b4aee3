"""Datasets, training jobs, model versions and evaluations in PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import connect


def json_safe(value: Any) -> Any:
    """JSON for JSONB: numpy scalars become floats, NaN and inf become null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def jsonb(value: Any) -> Jsonb:
    return Jsonb(json_safe(value))


# Asset hand-offs -----------------------------------------------------------------------------


def write_asset_value(url: str, asset_key: str, partition: str, run_id: str, value: dict) -> None:
    with connect(url) as conn:
        conn.execute(queries.UPSERT_ASSET_VALUE, (asset_key, partition, run_id, jsonb(value)))


def read_asset_value(
    url: str, asset_key: str, partition: str, run_id: str | None = None
) -> dict | None:
    """The value ``run_id`` wrote for this asset partition, else the latest one."""
    with connect(url) as conn:
        row = conn.execute(queries.SELECT_ASSET_VALUE, (asset_key, partition, run_id)).fetchone()
    return None if row is None else row["value"]


# Datasets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    content_hash: str
    created: bool


def record_dataset(
    url: str,
    *,
    content_hash: str,
    symbols: list[str],
    window_start: datetime,
    window_end: datetime,
    n_rows: int,
    class_balance: dict,
    feature_names: list[str],
    label_config: dict,
    artifact_uri: str,
    artifact_sha256: str,
    feature_version: str,
) -> DatasetRecord:
    """One row per distinct content hash: the same inputs never make a second row."""
    with connect(url) as conn:
        row = conn.execute(
            queries.INSERT_DATASET,
            (
                content_hash,
                symbols,
                window_start,
                window_end,
                n_rows,
                jsonb(class_balance),
                jsonb(feature_names),
                jsonb(label_config),
                artifact_uri,
                artifact_sha256,
                feature_version,
            ),
        ).fetchone()
        if row is not None:
            return DatasetRecord(str(row["id"]), content_hash, True)
        existing = conn.execute(queries.SELECT_DATASET_BY_HASH, (content_hash,)).fetchone()
    return DatasetRecord(str(existing["id"]), content_hash, False)


def all_symbols(url: str) -> list[str]:
    with connect(url) as conn:
        return [r["symbol"] for r in conn.execute(queries.SELECT_ALL_SYMBOLS)]


# Training jobs ---------------------------------------------------------------------------------


def start_training_job(
    url: str,
    *,
    family: str,
    trigger_type: str,
    trigger_id: str | None,
    priority: int,
    run_id: str,
    requested_by: str | None,
    reason: str | None,
    dataset_id: str,
    config: dict,
) -> str:
    with connect(url) as conn:
        row = conn.execute(
            queries.INSERT_TRAINING_JOB,
            (
                family,
                trigger_type,
                trigger_id,
                priority,
                run_id,
                requested_by,
                reason,
                dataset_id,
                jsonb(config),
            ),
        ).fetchone()
    return str(row["id"])


def update_training_progress(
    url: str, job_id: str, iteration: int, total: int, metric: str, value: float, rss: int
) -> None:
    with connect(url) as conn:
        conn.execute(
            queries.UPDATE_TRAINING_PROGRESS,
            (iteration, total, metric, value if math.isfinite(value) else None, rss, job_id),
        )


def finish_training_job(
    url: str,
    job_id: str,
    *,
    status: str,
    cpu_seconds: float,
    peak_rss: int,
    error: str | None = None,
) -> None:
    with connect(url) as conn:
        conn.execute(queries.FINISH_TRAINING_JOB, (status, cpu_seconds, peak_rss, error, job_id))


# Model versions -------------------------------------------------------------------------------


def register_model_version(url: str, *, family: str, **fields: Any) -> tuple[str, int]:
    """Insert a candidate with the family's next version number (serialized per family)."""
    with connect(url) as conn, conn.transaction():
        conn.execute(queries.LOCK_FAMILY_VERSIONS, (family,))
        version = conn.execute(queries.NEXT_MODEL_VERSION, (family,)).fetchone()["next"]
        row = conn.execute(
            queries.INSERT_MODEL_VERSION,
            (
                family,
                version,
                f"signal-{family}",
                fields["dataset_id"],
                fields["training_job_id"],
                fields.get("parent_version_id"),
                jsonb(fields["params"]),
                jsonb(fields["feature_names"]),
                fields["code_version"],
                fields["native_uri"],
                fields["native_sha256"],
                fields["onnx_uri"],
                fields["onnx_sha256"],
                fields["training_path"],
                fields["oof_uri"],
                fields["oof_sha256"],
                fields["train_seconds"],
                jsonb(fields.get("notes", [])),
            ),
        ).fetchone()
    return str(row["id"]), int(row["version"])


def get_model_version(url: str, version_id: str) -> dict:
    with connect(url) as conn:
        row = conn.execute(queries.SELECT_MODEL_VERSION, (version_id,)).fetchone()
    if row is None:
        raise LookupError(f"no model version {version_id}")
    return row


def current_champion(url: str, family: str) -> dict | None:
    with connect(url) as conn:
        return conn.execute(queries.SELECT_CHAMPION, (family,)).fetchone()


# Evaluation -----------------------------------------------------------------------------------


def record_performance(
    url: str,
    *,
    model_version_id: str,
    dataset_id: str | None,
    split: str,
    n_rows: int,
    ml_metrics: dict,
    business_metrics: dict,
) -> str:
    with connect(url) as conn:
        row = conn.execute(
            queries.INSERT_PERFORMANCE,
            (
                model_version_id,
                dataset_id,
                split,
                n_rows,
                jsonb(ml_metrics),
                jsonb(business_metrics),
            ),
        ).fetchone()
    return str(row["id"])


def trial_sharpes(url: str, family: str, excluding_version_id: str) -> list[float]:
    """Per-bar Sharpe of every other candidate of the family: the trials that deflate."""
    with connect(url) as conn:
        rows = conn.execute(queries.SELECT_TRIAL_SHARPES, (family, excluding_version_id))
        return [r["sharpe"] for r in rows]


def leaderboard(url: str) -> list[dict]:
    with connect(url) as conn:
        return conn.execute(queries.SELECT_LEADERBOARD).fetchall()


def comparison_split(champion_id, candidate_id) -> str:
    """The split name under which a candidate and a champion were judged on shared rows."""
    return f"vs_champion:{champion_id}:{candidate_id}"


@dataclass(frozen=True)
class VersionEvaluation:
    """A version's out-of-fold metrics and, when one was made, its comparison with the
    champion on the rows both had never seen (metrics flattened: ml and business)."""

    oof: dict[str, float]
    candidate_on_shared: dict[str, float] | None
    champion_on_shared: dict[str, float] | None
    champion_version_id: str | None


def evaluation_of(url: str, version: dict, champion_id: str | None) -> VersionEvaluation:
    with connect(url) as conn:
        oof = conn.execute(queries.SELECT_OOF_EVALUATION, (version["id"],)).fetchone()
        if oof is None:
            raise LookupError(f"{version['family']} v{version['version']} was never evaluated")
        shared = []
        if champion_id is not None:
            shared = conn.execute(
                queries.SELECT_SHARED_EVALUATION,
                (comparison_split(champion_id, version["id"]), version["id"], champion_id),
            ).fetchall()
    flat = {**oof["ml_metrics"], **oof["business_metrics"]}
    by_model = {
        str(r["model_version_id"]): {**r["ml_metrics"], **r["business_metrics"]} for r in shared
    }
    return VersionEvaluation(
        oof=flat,
        candidate_on_shared=by_model.get(str(version["id"])),
        champion_on_shared=by_model.get(str(champion_id)) if champion_id else None,
        champion_version_id=champion_id if by_model else None,
    )
