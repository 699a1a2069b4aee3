"""The mirror of pipeline runs in ml_pipeline_orchestration, for readers outside Dagster."""

from __future__ import annotations

from alphaplus_mlops.run_tags import trigger_id_from_tag
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def mirror_run(db: Database, **run: object) -> None:
    """Upsert a run into ml_pipeline_orchestration; an unknown trigger id is stored as NULL."""
    run = {**run, "trigger_id": trigger_id_from_tag(run.get("trigger_id"))}
    with db.connection() as conn:
        conn.execute(
            queries.UPSERT_RUN_MIRROR,
            (
                run["run_id"],
                run["job_name"],
                run.get("partition_key"),
                run["status"],
                run.get("trigger_type"),
                run.get("trigger_id"),
                run.get("priority", 0),
                jsonb(run.get("tags", {})),
                run.get("started_at"),
                run.get("finished_at"),
            ),
        )
