"""Consistency checks over what the database records, each finding with its repair.

The reaper sensor and ``alphaplus-mlops doctor`` share these: the sensor applies the safe
repairs on every tick, the doctor prints every finding with what ``--fix`` would do. What
Dagster knows about runs reaches this module as two callables, so it needs no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.artifacts import ArtifactStore
from alphaplus_mlops.store.db import Database, jsonb
from alphaplus_mlops.store.promotion import (
    FamilyLockTimeout,
    PromotionRefused,
    lock_family,
    promote,
)
from alphaplus_mlops.store.training_jobs import reap_training_job, running_training_jobs
from alphaplus_mlops.store.versions import set_status_if_candidate_in, set_status_in

#: Dagster run statuses after which a run worker no longer runs.
ENDED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

#: A `promote` decision younger than this may still have its promotion step running.
PROMOTION_GRACE_SECONDS = 300

#: A decision is completed on gate evidence no older than this; an older one is abandoned
#: (a months-old decision found after an upgrade must not promote on its own).
RECONCILE_MAX_EVIDENCE_AGE = timedelta(days=2)

RECONCILER = "reconciler"


@dataclass
class Finding:
    check: str
    subject: str
    problem: str
    fix: str
    """What the repair does, or why there is none."""
    repair: Callable[[], str] | None = field(default=None, repr=False)
    """Applies the fix and says what it did; None when only a person can resolve it."""

    def line(self) -> str:
        return f"[{self.check}] {self.subject}: {self.problem}"


def stale_training_jobs(
    db: Database,
    *,
    stale_after: float,
    run_status: Callable[[str], str | None],
    end_run: Callable[[str, str], None],
    worker_alive: Callable[[dict], bool] = lambda job: False,
) -> list[Finding]:
    """Running rows whose Dagster run has ended, or whose heartbeat stopped more than
    ``stale_after`` seconds ago (the worker was killed). A silent row whose worker process
    is seen alive (``worker_alive``: it runs on this host) is left alone: its beats were
    lost, say in a database outage, and resume. The repair marks the row failed
    with the reason and ends a run Dagster still counts as in progress (its training slot
    is free again) and frees the run's pool slots."""
    findings = []
    for job in running_training_jobs(db):
        run_id = job["dagster_run_id"]
        status = run_status(run_id) if run_id else None
        silent = float(job["silent_seconds"])
        if status in ENDED_RUN_STATUSES:
            reason = f"reaped: its Dagster run ended ({status}) without closing the row"
        elif silent > stale_after and not worker_alive(job):
            reason = (
                f"reaped: no heartbeat for {silent:.0f} s (limit {stale_after:.0f} s); the run "
                "worker is gone (killed, out of memory, or its machine lost)"
            )
        else:
            continue
        findings.append(
            Finding(
                "stale_training_job",
                f"training job {job['id']} ({job['family']}, run {run_id}, worker "
                f"{job['worker_host']}:{job['worker_pid']})",
                reason.removeprefix("reaped: "),
                "mark the row failed with this reason"
                + ("" if status in ENDED_RUN_STATUSES else " and end its Dagster run"),
                _reaper(db, str(job["id"]), run_id, status, reason, end_run),
            )
        )
    return findings


def _reaper(db, job_id, run_id, status, reason, end_run) -> Callable[[], str]:
    def repair() -> str:
        if not reap_training_job(db, job_id, reason):
            return "already closed by its worker"
        if run_id:
            end_run(run_id, reason)  # fails it if Dagster still counts it, frees its slots
        return "marked failed"

    return repair


def unfinished_promotions(
    db: Database,
    store: ArtifactStore,
    *,
    older_than: float = PROMOTION_GRACE_SECONDS,
    family: str | None = None,
) -> list[Finding]:
    """`promote` decisions with no promotion in the ledger. The repair completes the
    promotion if it still holds (gates passed, files intact, the champion it was judged
    against still in office) and otherwise records it as abandoned; either way a
    reconciliation decision says what happened."""
    with db.connection() as conn:
        decisions = conn.execute(queries.SELECT_UNFINISHED_PROMOTIONS, (older_than,)).fetchall()
    return [
        Finding(
            "unfinished_promotion",
            f"decision {d['id']} ({d['family']} v{d['version']}, "
            f"{d['decided_at']:%Y-%m-%d %H:%M} UTC)",
            "decided `promote`, but no promotion followed",
            "complete the promotion if the decision still holds, else record it abandoned",
            _promotion_reconciler(db, store, d),
        )
        for d in decisions
        if family is None or d["family"] == family
    ]


def _promotion_reconciler(db: Database, store: ArtifactStore, decision: dict):
    def repair() -> str:
        judged_against = (decision["inputs"] or {}).get("champion_version_id")
        try:
            entry = promote(
                db,
                store,
                str(decision["model_version_id"]),
                actor=RECONCILER,
                reason=f"completing automated decision {decision['id']}, whose promotion never ran",
                evidence={"decision_id": str(decision["id"])},
                replacing=judged_against,
                max_evidence_age=RECONCILE_MAX_EVIDENCE_AGE,
            )
        except FamilyLockTimeout as exc:
            return f"left for the next attempt: {exc}"  # nothing was judged
        except PromotionRefused as exc:
            if _promoted_since(db, decision):
                return "completed meanwhile by another reconciler"
            _record_reconciliation(db, decision, "promotion_abandoned", str(exc))
            return f"abandoned: {exc}"
        _record_reconciliation(
            db, decision, "promotion_completed", f"ledger #{entry.seq}", abandoned=False
        )
        return f"promoted (ledger #{entry.seq})"

    return repair


def _promoted_since(db: Database, decision: dict) -> bool:
    """Whether the decision was settled after all: the reaper, a training run and
    `doctor --fix` may reach the same decision at once, and the family lock orders them."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_UNFINISHED_PROMOTION, (decision["id"],)).fetchone()
    return found is None


def _record_reconciliation(
    db: Database, decision: dict, outcome: str, reason: str, *, abandoned: bool = True
) -> None:
    with db.connection() as conn, conn.transaction():
        if abandoned:
            # Out of `candidate`: a version nobody will promote is not waiting for anything.
            set_status_if_candidate_in(conn, decision["model_version_id"], "not_promoted")
        conn.execute(
            queries.INSERT_DECISION,
            (
                "reconciliation",
                decision["family"],
                decision["model_version_id"],
                "reconcile-v1",
                jsonb({"decision_id": str(decision["id"])}),
                outcome,
                jsonb([reason]),
                RECONCILER,
            ),
        )


def champion_ledger_mismatches(db: Database) -> list[Finding]:
    """Families whose champion (by status) is not the one the ledger's latest row
    installed. Promotion and rollback change both in one transaction, so this means an
    edit outside them; the ledger is the record, and the repair restores its champion."""
    with db.connection() as conn:
        rows = conn.execute(queries.SELECT_CHAMPION_LEDGER_MISMATCH).fetchall()
    return [
        Finding(
            "champion_ledger",
            f"family {r['family']}",
            f"champion by status is {_v(r['champion_version'])}, the ledger's latest "
            f"entry (#{r['ledger_seq']}) says {_v(r['ledger_version'])}",
            f"make {_v(r['ledger_version'])} the champion again, as the ledger says",
            _champion_restorer(db, r),
        )
        for r in rows
    ]


def _text(value: object) -> object:
    return value if value is None or isinstance(value, int) else str(value)


def _v(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def _champion_restorer(db: Database, mismatch: dict):
    def repair() -> str:
        family = mismatch["family"]
        with db.connection() as conn, conn.transaction():
            lock_family(conn, family)
            again = conn.execute(queries.SELECT_CHAMPION_LEDGER_MISMATCH).fetchall()
            if [r for r in again if r["family"] == family] != [mismatch]:
                return "changed since it was found: run doctor again"  # a promotion came
            if mismatch["champion_version_id"] is not None:
                set_status_in(conn, mismatch["champion_version_id"], "retired")
            if mismatch["ledger_version_id"] is not None:
                set_status_in(conn, mismatch["ledger_version_id"], "champion")
            conn.execute(
                queries.INSERT_DECISION,
                (
                    "reconciliation",
                    family,
                    mismatch["ledger_version_id"] or mismatch["champion_version_id"],
                    "reconcile-v1",
                    jsonb({k: _text(v) for k, v in mismatch.items() if k != "family"}),
                    "champion_restored_from_ledger",
                    jsonb([f"status said {_v(mismatch['champion_version'])}"]),
                    RECONCILER,
                ),
            )
        return f"{family}: champion is {_v(mismatch['ledger_version'])} again"

    return repair
