"""Asset hand-offs: the small JSON references one asset passes to the next in a run."""

from __future__ import annotations

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def write_asset_value(db: Database, asset_key: str, partition: str, run_id: str, value: dict):
    with db.connection() as conn:
        conn.execute(queries.UPSERT_ASSET_VALUE, (asset_key, partition, run_id, jsonb(value)))


def read_asset_value(
    db: Database, asset_key: str, partition: str, run_id: str | None = None
) -> dict | None:
    """The value ``run_id`` wrote for this asset partition, else the latest one."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_ASSET_VALUE, (asset_key, partition, run_id)).fetchone()
    return None if row is None else row["value"]
