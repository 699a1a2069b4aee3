"""What the database records against what the artifact store holds.

Every artifact a row names (a version's native model, ONNX export and out-of-fold
predictions, a dataset's Parquet file, an evaluation's per-bar returns) is looked up in the
store and its SHA-256 checked. :func:`audit_artifacts` lists what is missing or corrupt;
:func:`raise_artifact_alerts` turns the list into alerts, one per record; the periodic scan
(defs/artifact_scan.py) and ``alphaplus-mlops doctor`` call them.

A retrain that finds its champion's files unreadable goes on without it and says so
(:func:`report_unreadable_champion`): a lost file costs a comparison, never the retrain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.alerts import FiredAlert, fire_alert
from alphaplus_mlops.store.artifacts import (
    ArtifactIntegrityError,
    ArtifactMissingError,
    ArtifactStore,
)
from alphaplus_mlops.store.db import Database

ARTIFACT_RULE = "artifact_missing"

_KIND = {
    "native": "native model",
    "onnx": "ONNX model",
    "oof": "out-of-fold predictions",
    "dataset": "dataset",
    "returns": "per-bar returns",
}


@dataclass(frozen=True)
class ArtifactFinding:
    """A recorded artifact the store cannot hand back as recorded."""

    table: str
    record_id: str
    kind: str
    """native | onnx | oof (model_versioning), dataset, returns (model_performance_tracking)"""
    family: str | None
    version: int | None
    role: str | None
    """the version's status (champion, retired, challenger, ...); None for a dataset"""
    uri: str
    sha256: str | None
    problem: str
    """missing | corrupt"""
    detail: str

    @property
    def what(self) -> str:
        """Whose file, in words: 'xgboost v3 (champion) native model'."""
        return f"{_owner(self)} {_KIND.get(self.kind, self.kind)}"

    @property
    def key(self) -> str:
        """The record the file belongs to: one open alert per record."""
        return f"{self.table}:{self.record_id}"


def check_artifact(store: ArtifactStore, uri: str, sha256: str | None) -> tuple[str, str] | None:
    """(problem, detail) when the file at ``uri`` is not the recorded one, else None."""
    if sha256 is None:
        return "corrupt", "no checksum recorded: the file cannot be verified"
    try:
        store.verify(uri, sha256)
    except ArtifactMissingError as exc:
        return "missing", str(exc)
    except (ArtifactIntegrityError, ValueError) as exc:
        return "corrupt", str(exc)
    return None


def audit_artifacts(db: Database, store: ArtifactStore) -> list[ArtifactFinding]:
    """Every recorded artifact that is missing from ``store`` or fails its checksum,
    champions' first. Each distinct file is read once however many rows name it."""
    with db.connection() as conn:
        recorded = conn.execute(queries.SELECT_RECORDED_ARTIFACTS).fetchall()
    checked: dict[tuple[str, str | None], tuple[str, str] | None] = {}
    findings = []
    for row in recorded:
        file = (row["uri"], row["sha256"])
        if file not in checked:
            checked[file] = check_artifact(store, row["uri"], row["sha256"])
        if checked[file] is None:
            continue
        problem, detail = checked[file]
        findings.append(
            ArtifactFinding(
                table=row["record_table"],
                record_id=row["record_id"],
                kind=row["kind"],
                family=row["family"],
                version=row["version"],
                role=row["role"],
                uri=row["uri"],
                sha256=row["sha256"],
                problem=problem,
                detail=detail,
            )
        )
    return findings


def _alert_details(findings: list[ArtifactFinding]) -> dict:
    first = findings[0]
    return {
        "key": first.key,
        "table": first.table,
        "record_id": first.record_id,
        "family": first.family,
        "version": first.version,
        "role": first.role,
        "problems": [
            {"kind": f.kind, "uri": f.uri, "problem": f.problem, "detail": f.detail}
            for f in findings
        ],
    }


def raise_artifact_alerts(
    db: Database, findings: Iterable[ArtifactFinding]
) -> list[tuple[list[ArtifactFinding], FiredAlert | None]]:
    """One alert per record with unreadable files (a repeat updates the record's unresolved
    alert); each record's findings with the alert raised or updated."""
    by_record: dict[str, list[ArtifactFinding]] = {}
    for finding in findings:
        by_record.setdefault(finding.key, []).append(finding)
    raised = []
    for group in by_record.values():
        message = (
            _owner(group[0])
            + ": "
            + "; ".join(f"{_KIND.get(f.kind, f.kind)} {f.problem}" for f in group)
        )
        raised.append((group, fire_alert(db, ARTIFACT_RULE, message, _alert_details(group))))
    return raised


def _owner(finding: ArtifactFinding) -> str:
    if finding.family is not None:
        return f"{finding.family} v{finding.version} ({finding.role})"
    return f"{finding.table} {finding.record_id}"


def version_model_findings(store: ArtifactStore, version: dict) -> list[ArtifactFinding]:
    """The version's native and ONNX files that are missing or corrupt."""
    findings = []
    for kind in ("native", "onnx"):
        uri, sha256 = version[f"{kind}_uri"], version[f"{kind}_sha256"]
        found = check_artifact(store, uri, sha256) if uri else ("missing", "no file recorded")
        if found is not None:
            findings.append(
                ArtifactFinding(
                    table="model_versioning",
                    record_id=str(version["id"]),
                    kind=kind,
                    family=version["family"],
                    version=version["version"],
                    role=version["status"],
                    uri=uri or "",
                    sha256=sha256,
                    problem=found[0],
                    detail=found[1],
                )
            )
    return findings


def report_unreadable_champion(
    db: Database, store: ArtifactStore, champion: dict, error: ArtifactIntegrityError
) -> str:
    """Raise the alert for a champion whose model files cannot be read (or find the open
    one), and the sentence a retrain records: why it went on without the champion."""
    findings = version_model_findings(store, champion)
    if not findings:
        # The file came back between the failed read and this check: the failure stands.
        findings = [
            ArtifactFinding(
                table="model_versioning",
                record_id=str(champion["id"]),
                kind="native",
                family=champion["family"],
                version=champion["version"],
                role=champion["status"],
                uri=champion["native_uri"] or "",
                sha256=champion["native_sha256"],
                problem="missing" if isinstance(error, ArtifactMissingError) else "corrupt",
                detail=str(error),
            )
        ]
    ((_, alert),) = raise_artifact_alerts(db, findings)
    detail = "; ".join(f"{_KIND[f.kind]} {f.problem} ({f.detail})" for f in findings)
    said = alert.sentence() if alert else "no alert (rule artifact_missing disabled)"
    return (
        f"champion v{champion['version']}'s artifacts are missing or corrupt: {detail}; "
        f"no comparison possible; {said}"
    )
