"""The periodic artifact scan: every recorded file checked against its SHA-256.

A lost or truncated file otherwise surfaces only when something reads it: a rollback
months later, or a retrain's comparison. The scan reads them all daily and raises one
``artifact_missing`` alert per record with unreadable files (a repeat updates the unresolved
one), resolves those whose files are whole again, reports files in the store that fail
their own name, and removes temporary files that killed writers left behind.
"""

import dagster as dg

from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.store.alerts import resolve_cleared
from alphaplus_mlops.store.artifact_audit import (
    ARTIFACT_RULE,
    audit_artifacts,
    raise_artifact_alerts,
)

# Long enough that no write still in progress is mistaken for a dead writer's leftovers.
TEMPORARY_AGE_SECONDS = 3600.0


@dg.op(
    description="Checks every artifact the database records (models, ONNX exports, "
    "datasets, out-of-fold predictions, returns) against its SHA-256, raises an "
    "artifact_missing alert per record with a missing or corrupt file, resolves the alerts "
    "of records that are whole again, and sweeps stale "
    "temporary files."
)
def scan_artifacts(
    context: dg.OpExecutionContext, postgres: PostgresResource, artifacts: ArtifactStoreResource
) -> None:
    store = artifacts.store
    findings = audit_artifacts(postgres.db, store)
    raised = raise_artifact_alerts(postgres.db, findings)
    # The scan has just read every record: an alert about one not found now has cleared.
    resolved = resolve_cleared(
        postgres.db,
        ARTIFACT_RULE,
        {f.key for f in findings},
        "the scan found the record's files present and matching their checksums",
    )
    for group, alert in raised:
        problems = "; ".join(f"{f.kind} {f.problem}: {f.detail}" for f in group)
        said = alert.sentence() if alert else "rule disabled"
        context.log.error(f"{group[0].key} ({said}): {problems}")
    unrecorded = [p for p in store.scan(TEMPORARY_AGE_SECONDS) if p.problem != "temporary"]
    for problem in unrecorded:
        context.log.warning(f"{problem.path}: {problem.problem}: {problem.detail}")
    swept = store.sweep_temporaries(TEMPORARY_AGE_SECONDS)
    context.add_output_metadata(
        {
            "unreadable_artifacts": len(findings),
            "records_affected": len(raised),
            "alerts_raised": sum(1 for _, a in raised if a is not None and a.new),
            "alerts_resolved": resolved,
            "store_files_failing_their_name": len(unrecorded),
            "temporaries_removed": len(swept),
        }
    )


@dg.job(
    name="artifact_scan",
    description="Verify every recorded artifact; alert on missing or corrupt files.",
)
def artifact_scan_job():
    scan_artifacts()


@dg.schedule(
    cron_schedule="30 5 * * *",
    job=artifact_scan_job,
    execution_timezone="UTC",
    # On by default: a lost champion file must not wait for someone to remember the scan.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily (05:30 UTC, before the model-age retrains): the artifact scan.",
)
def artifact_scan_schedule(context: dg.ScheduleEvaluationContext):
    when = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"artifact_scan:{when:%Y-%m-%d}" if when else None)
