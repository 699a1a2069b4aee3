"""Offline evaluations (model_performance_tracking): out-of-fold and vs the champion."""

from __future__ import annotations

from dataclasses import dataclass

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.artifacts import StoredArtifact
from alphaplus_mlops.store.db import Database, jsonb


def record_performance(
    db: Database,
    *,
    model_version_id: str,
    dataset_id: str | None,
    split: str,
    n_rows: int,
    ml_metrics: dict,
    business_metrics: dict,
    returns: StoredArtifact | None = None,
) -> str:
    """One evaluation; ``returns``: its per-bar net returns, kept for later trials."""
    with db.connection() as conn:
        row = conn.execute(
            queries.INSERT_PERFORMANCE,
            (
                model_version_id,
                dataset_id,
                split,
                n_rows,
                jsonb(ml_metrics),
                jsonb(business_metrics),
                returns.uri if returns else None,
                returns.sha256 if returns else None,
            ),
        ).fetchone()
    return str(row["id"])


def prior_trials(db: Database, version_id: str, label_config: dict) -> list[dict]:
    """Every other version evaluated out of fold on the same label definition, any family
    or configuration, drills excluded, newest first: sharpe (per bar) and where its
    per-bar returns are (returns_uri, returns_sha256; None for evaluations made before
    they were kept)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_TRIALS, (version_id, jsonb(label_config))).fetchall()


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


def evaluation_of(db: Database, version: dict, champion_id: str | None) -> VersionEvaluation:
    with db.connection() as conn:
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
