"""Dataset versions in training_data_management: one row per distinct content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    content_hash: str
    created: bool


def record_dataset(
    db: Database,
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
    labels_shuffled: bool = False,
) -> DatasetRecord:
    """One row per distinct content hash: the same inputs never make a second row."""
    with db.connection() as conn:
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
                labels_shuffled,
            ),
        ).fetchone()
        if row is not None:
            return DatasetRecord(str(row["id"]), content_hash, True)
        existing = conn.execute(queries.SELECT_DATASET_BY_HASH, (content_hash,)).fetchone()
    return DatasetRecord(str(existing["id"]), content_hash, False)


def dataset_by_id(db: Database, dataset_id: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_DATASET_BY_ID, (dataset_id,)).fetchone()
