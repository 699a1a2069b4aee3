"""`alphaplus-mlops doctor`: every consistency check, now, with what `--fix` does.

The checks are the reaper sensor's (store/consistency.py) plus the slower ones it leaves to
a person or a schedule: champion against ledger, every recorded artifact against its
checksum, pending migrations.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from alphaplus_mlops.app.dagster_env import project_instance
from alphaplus_mlops.defs.upkeep import DagsterRuns, worker_alive
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifact_audit import audit_artifacts, raise_artifact_alerts
from alphaplus_mlops.store.artifacts import ArtifactStore, open_artifact_store
from alphaplus_mlops.store.consistency import (
    Finding,
    champion_ledger_mismatches,
    stale_training_jobs,
    unfinished_promotions,
)
from alphaplus_mlops.store.db import Database, resolve_database_url
from alphaplus_mlops.store.migrations import migrate, migrate_as_owner, pending


def migration_findings(settings: Settings, url: str) -> list[Finding]:
    waiting = pending(url)
    if not waiting:
        return []
    owner = settings.migration_database_url

    def apply() -> str:
        applied = migrate_as_owner(owner, url) if owner else migrate(url)
        return f"applied {', '.join(m.filename for m in applied) or 'nothing'}"

    return [
        Finding(
            "pending_migrations",
            "database schema",
            f"{len(waiting)} migration(s) not applied: {', '.join(m.filename for m in waiting)}",
            "apply them" + (" as the migration role" if owner else ""),
            apply,
        )
    ]


def artifact_findings(db: Database, store: ArtifactStore) -> list[Finding]:
    findings = audit_artifacts(db, store)

    def alert(group_key: str) -> Callable[[], str]:
        def repair() -> str:
            group = [f for f in findings if f.key == group_key]
            [(_, fired)] = raise_artifact_alerts(db, group)
            return f"alert {fired.id} open" if fired else "alert rule disabled"

        return repair

    return [
        Finding(
            "artifact",
            f.what,
            f"{f.problem}: {f.detail}",
            "raise an artifact_missing alert (the bytes cannot be recreated: restore the file "
            "under the store root from a backup, or retrain; roll back a champion)",
            alert(f.key),
        )
        for f in findings
    ]


def consistency_findings(
    settings: Settings, db: Database, store: ArtifactStore, instance: dg.DagsterInstance
) -> list[Finding]:
    runs = DagsterRuns(instance)
    return [
        *stale_training_jobs(
            db,
            stale_after=settings.training_stale_seconds,
            run_status=runs.status,
            end_run=runs.end,
            worker_alive=worker_alive,
        ),
        *unfinished_promotions(db, store),
        *champion_ledger_mismatches(db),
        *artifact_findings(db, store),
    ]


#: Findings a fix leaves open on purpose: only a person can bring lost bytes back.
_NEEDS_A_PERSON = {"artifact"}


def run_doctor(settings: Settings, *, fix: bool, echo: Callable[[str], None]) -> int:
    """Print every finding (and, with ``fix``, repair it); the number left unresolved."""
    url = resolve_database_url(settings)
    findings = migration_findings(settings, url)
    if findings and not fix:
        _report(findings, fix=False, echo=echo)
        echo("the other checks need a current schema: run `alphaplus-mlops doctor --fix`")
        return len(findings)
    for finding in findings:
        _apply(finding, echo)
    store = open_artifact_store(settings.artifact_location)
    with Database(url) as db, project_instance(settings, url) as instance:
        findings = consistency_findings(settings, db, store, instance)
        _report(findings, fix=fix, echo=echo)
        if not fix:
            return len(findings)
        remaining = consistency_findings(settings, db, store, instance)
    for finding in remaining:
        if finding.check not in _NEEDS_A_PERSON:
            echo(f"still open: {finding.line()}")
    echo(f"{len(remaining)} finding(s) unresolved" if remaining else "all consistent")
    return len(remaining)


def _report(findings: list[Finding], *, fix: bool, echo: Callable[[str], None]) -> None:
    if not findings:
        echo("no findings: training rows, promotions, champions and artifacts are consistent")
        return
    for finding in findings:
        if fix:
            _apply(finding, echo)
        else:
            echo(finding.line())
            echo(f"    --fix would: {finding.fix}")


def _apply(finding: Finding, echo: Callable[[str], None]) -> None:
    echo(finding.line())
    outcome = finding.repair() if finding.repair is not None else "nothing done"
    echo(f"    fixed: {outcome}" if finding.check not in _NEEDS_A_PERSON else f"    {outcome}")
