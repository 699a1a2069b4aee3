"""Model versions (model_versioning): registration, status changes and every lookup.

The ``*_in`` functions take an open connection, for use inside another module's transaction
(promotion, rollback, decisions); the others borrow a connection of their own.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def register_model_version(db: Database, *, family: str, **fields: Any) -> tuple[str, int]:
    """Insert a candidate with the family's next version number (serialized per family)."""
    with db.connection() as conn, conn.transaction():
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


def version_in(conn: Connection, version_id: str, *, for_update: bool = False) -> dict | None:
    query = queries.SELECT_VERSION_FOR_UPDATE if for_update else queries.SELECT_MODEL_VERSION
    return conn.execute(query, (version_id,)).fetchone()


def champion_in(conn: Connection, family: str, *, for_update: bool = False) -> dict | None:
    query = queries.SELECT_CHAMPION_FOR_UPDATE if for_update else queries.SELECT_CHAMPION
    return conn.execute(query, (family,)).fetchone()


def version_by_number_in(conn: Connection, family: str, version: int) -> dict | None:
    return conn.execute(queries.SELECT_VERSION_BY_NUMBER, (family, version)).fetchone()


def set_status_in(conn: Connection, version_id: str, status: str) -> None:
    conn.execute(queries.SET_VERSION_STATUS, (status, version_id))


def set_status_if_candidate_in(conn: Connection, version_id: str, status: str) -> bool:
    """Move a candidate to ``status``; False when the version is no longer a candidate."""
    return (
        conn.execute(queries.SET_STATUS_IF_CANDIDATE, (status, version_id)).fetchone() is not None
    )


def get_model_version(db: Database, version_id: str) -> dict:
    with db.connection() as conn:
        row = version_in(conn, version_id)
    if row is None:
        raise LookupError(f"no model version {version_id}")
    return row


def current_champion(db: Database, family: str) -> dict | None:
    with db.connection() as conn:
        return champion_in(conn, family)


def version_trained_in_run(db: Database, run_id: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_VERSION_TRAINED_IN_RUN, (run_id,)).fetchone()


def version_by_number(db: Database, family: str, version: int) -> dict | None:
    with db.connection() as conn:
        return version_by_number_in(conn, family, version)


def champion_since(db: Database, family: str) -> dict | None:
    """The champion with the time its ledger entry made it champion."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_CHAMPION_SINCE, (family,)).fetchone()


def family_status(db: Database, family: str) -> dict:
    """Champion, challenger, last training and last decision of a family, in one row."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_FAMILY_STATUS, {"f": family}).fetchone()


def leaderboard(db: Database) -> list[dict]:
    """The latest version of each family with its out-of-fold metrics."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LEADERBOARD).fetchall()
