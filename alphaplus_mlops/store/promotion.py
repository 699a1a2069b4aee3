"""Decisions, promotion and rollback: the transactions that move champions, and the ledger.

Promotion and rollback each run in one transaction under a per-family advisory lock:
the old champion's status changes, the new one's changes, a ledger row is appended and the
deployment stage recorded, or none of it happens. A partial unique index makes a second
champion per family impossible; readers in other transactions see the old champion or the
new one, never neither nor both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.artifacts import ArtifactIntegrityError, ArtifactStore
from alphaplus_mlops.store.db import Database, jsonb
from alphaplus_mlops.store.gate_results import gate_status_in
from alphaplus_mlops.store.versions import (
    champion_in,
    set_status_if_candidate_in,
    set_status_in,
    version_by_number_in,
    version_in,
)
from alphaplus_mlops.versioning import code_version

ANY_CHAMPION = object()
"""promote(replacing=ANY_CHAMPION): replace whichever version is champion (manual use)."""


class PromotionRefused(RuntimeError):
    """A version may not become champion; the message says why."""


class FamilyLockTimeout(PromotionRefused):
    """The family's lock was held longer than the lock timeout: nothing was judged, so the
    same call may succeed later."""


def lock_family(conn, family: str) -> None:
    """The per-family lock, waited for no longer than the session's lock_timeout: a hung
    holder fails this promotion with a message instead of blocking it forever."""
    waited = conn.execute(queries.SHOW_LOCK_TIMEOUT).fetchone()["lock_timeout"]
    try:
        conn.execute(queries.LOCK_FAMILY_VERSIONS, (family,))
    except psycopg.errors.LockNotAvailable as exc:
        raise FamilyLockTimeout(
            f"another transaction has held the {family} promotion lock for more than "
            f"{waited} (ALPHAPLUS_LOCK_TIMEOUT_SECONDS): nothing changed; find it with "
            "pg_stat_activity / pg_locks, end it, and try again"
        ) from exc


def _check_evidence_age(status, family: str, version: int, max_age: timedelta) -> None:
    oldest = min((g["checked_at"] for g in status.gates if g["checked_at"]), default=None)
    if oldest is not None and datetime.now(UTC) - oldest > max_age:
        raise PromotionRefused(
            f"{family} v{version}'s gate evidence dates from {oldest:%Y-%m-%d %H:%M} UTC, "
            f"older than {max_age.days} day(s): re-run its gates (retrain) before promoting"
        )


def reject_candidate(
    db: Database, version: dict, reason: str, rule: str, run_id: str | None
) -> bool:
    """Mark a candidate rejected (once) with its decision and deployment stage."""
    with db.connection() as conn, conn.transaction():
        if not set_status_if_candidate_in(conn, version["id"], "rejected"):
            return False
        decision = conn.execute(
            queries.INSERT_DECISION,
            (
                "deployment",
                version["family"],
                version["id"],
                rule,
                jsonb({"run_id": run_id}),
                "reject",
                jsonb([reason]),
                "quality_gates",
            ),
        ).fetchone()["id"]
        conn.execute(
            queries.INSERT_DEPLOYMENT_STAGE,
            (version["id"], version["family"], "rejected", decision, jsonb({"reason": reason})),
        )
    return True


def insert_decision(
    conn,
    *,
    decision_type: str,
    family: str,
    version_id: str | None,
    rule: str,
    inputs: dict,
    outcome: str,
    reasons: list[str],
    decided_by: str,
) -> str:
    """One automated_decision_making row, in the caller's transaction; its id."""
    return conn.execute(
        queries.INSERT_DECISION,
        (
            decision_type,
            family,
            version_id,
            rule,
            jsonb(inputs),
            outcome,
            jsonb(reasons),
            decided_by,
        ),
    ).fetchone()["id"]


def record_decision(
    db: Database,
    *,
    family: str,
    version_id: str,
    rule: str,
    inputs: dict,
    outcome: str,
    reasons: list[str],
    new_status: str | None,
    stage: str,
) -> str:
    with db.connection() as conn, conn.transaction():
        decision = insert_decision(
            conn,
            decision_type="deployment",
            family=family,
            version_id=version_id,
            rule=rule,
            inputs=inputs,
            outcome=outcome,
            reasons=reasons,
            decided_by="deployment_decision",
        )
        if new_status is not None:
            set_status_if_candidate_in(conn, version_id, new_status)
        conn.execute(
            queries.INSERT_DEPLOYMENT_STAGE,
            (version_id, family, stage, decision, jsonb({"outcome": outcome, "reasons": reasons})),
        )
    return str(decision)


def verify_artifacts(store: ArtifactStore, version: dict) -> None:
    for kind in ("native", "onnx"):
        try:
            store.get_bytes(version[f"{kind}_uri"], version[f"{kind}_sha256"])
        except ArtifactIntegrityError as exc:
            raise PromotionRefused(
                f"{version['family']} v{version['version']} cannot serve: {exc}"
            ) from exc


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    seq: int
    recorded_at: datetime
    family: str
    action: str
    version: int
    previous_version: int | None


def _ledger_entry(row: dict, family: str, action: str, new: dict, old: dict | None) -> LedgerEntry:
    return LedgerEntry(
        str(row["id"]),
        row["seq"],
        row["recorded_at"],
        family,
        action,
        new["version"],
        old["version"] if old else None,
    )


def promote(
    db: Database,
    store: ArtifactStore,
    version_id: str,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
    replacing: str | None | object = ANY_CHAMPION,
    max_evidence_age: timedelta | None = None,
    drill: bool = False,
) -> LedgerEntry:
    """Make ``version_id`` its family's champion, or raise PromotionRefused saying why.

    ``drill`` is the one way past the gates, for `make demo` to show the automatic
    rollback: it takes only a version trained on shuffled labels (its dataset records it),
    which can never be a real model, and the ledger row says it was a drill.

    ``replacing`` is the champion an automated decision compared the candidate with (None:
    there was none). If another version became champion since, the decision is stale and
    the promotion is refused; manual promotions leave it at ANY_CHAMPION.
    ``max_evidence_age`` refuses gate results older than that (manual promotions).
    """
    if not reason.strip():
        raise PromotionRefused("a promotion needs a reason, for the ledger")
    with db.connection() as conn, conn.transaction():
        found = version_in(conn, version_id)
        if found is None:
            raise PromotionRefused(f"no model version {version_id}")
        family = found["family"]
        # The family lock first, as rollback takes it: one order, no deadlock.
        lock_family(conn, family)
        version = version_in(conn, version_id, for_update=True)
        status = gate_status_in(conn, version_id)
        if drill:
            if not conn.execute(queries.SELECT_LABELS_SHUFFLED, (version_id,)).fetchone()[
                "shuffled"
            ]:
                raise PromotionRefused(
                    f"{family} v{version['version']} was trained on real labels: a drill "
                    "promotion takes only a shuffled-label version"
                )
            evidence = {**(evidence or {}), "drill": "gates bypassed: shuffled-label drill"}
        elif not status.all_passed:
            raise PromotionRefused(
                f"{family} v{version['version']} has not passed every quality gate "
                f"({status.summary()}): refusing to promote"
            )
        if version["status"] == "champion" or (version["status"] == "rejected" and not drill):
            raise PromotionRefused(f"{family} v{version['version']} is {version['status']}")
        if max_evidence_age is not None:
            _check_evidence_age(status, family, version["version"], max_evidence_age)
        verify_artifacts(store, version)
        previous = champion_in(conn, family, for_update=True)
        previous_id = str(previous["id"]) if previous else None
        if replacing is not ANY_CHAMPION and previous_id != replacing:
            raise PromotionRefused(
                f"{family} v{version['version']} was judged against champion {replacing}, but "
                f"the champion is now {previous_id}: decide again before promoting"
            )
        if previous is not None:
            set_status_in(conn, previous["id"], "retired")
        set_status_in(conn, version_id, "champion")
        gate_evidence = {
            g["gate_name"]: {"passed": g["passed"], "reason": g["reason"]} for g in status.gates
        }
        row = conn.execute(
            queries.INSERT_LEDGER,
            (
                family,
                "promote",
                version_id,
                previous["id"] if previous else None,
                actor,
                reason,
                jsonb({"gates": gate_evidence, **(evidence or {})}),
                version["dataset_hash"],
                code_version(),
            ),
        ).fetchone()
        conn.execute(
            queries.INSERT_DEPLOYMENT_STAGE,
            (version_id, family, "promoted", None, jsonb({"actor": actor, "reason": reason})),
        )
    return _ledger_entry(row, family, "promote", version, previous)


def rollback(
    db: Database,
    store: ArtifactStore,
    family: str,
    *,
    actor: str,
    reason: str,
    to_version: int | None = None,
    evidence: dict | None = None,
    replacing: str | None | object = ANY_CHAMPION,
) -> LedgerEntry:
    """Restore the previous known-good champion (or ``to_version``) in one transaction.

    The current champion's files are never read, so this works when they are gone or
    corrupt; the target's files are verified first, and a target that fails is refused.
    ``evidence`` joins the target's gates in the ledger row; ``replacing`` is the champion
    an automated decision judged (refused if another one serves by now).
    """
    if not reason.strip():
        raise PromotionRefused("a rollback needs a reason")
    with db.connection() as conn, conn.transaction():
        lock_family(conn, family)
        current = champion_in(conn, family, for_update=True)
        current_id = str(current["id"]) if current else None
        if replacing is not ANY_CHAMPION and current_id != replacing:
            raise PromotionRefused(
                f"the {family} rollback judged champion {replacing}, but {current_id} serves now"
            )
        if to_version is not None:
            target = version_by_number_in(conn, family, to_version)
            if target is None:
                raise PromotionRefused(f"{family} has no version {to_version}")
        else:
            target = _previous_champion(conn, family, current)
        if current is not None and target["id"] == current["id"]:
            raise PromotionRefused(f"{family} v{target['version']} is already the champion")
        if target["status"] == "rejected":
            raise PromotionRefused(f"{family} v{target['version']} was rejected by its gates")
        status = gate_status_in(conn, str(target["id"]))
        if not status.all_passed:
            raise PromotionRefused(
                f"{family} v{target['version']} is not known-good ({status.summary()})"
            )
        verify_artifacts(store, target)
        if current is not None:
            set_status_in(conn, current["id"], "rolled_back")
            conn.execute(
                queries.INSERT_DEPLOYMENT_STAGE,
                (
                    current["id"],
                    family,
                    "rolled_back",
                    None,
                    jsonb({"actor": actor, "reason": reason}),
                ),
            )
        set_status_in(conn, target["id"], "champion")
        row = conn.execute(
            queries.INSERT_LEDGER,
            (
                family,
                "rollback",
                target["id"],
                current["id"] if current else None,
                actor,
                reason,
                jsonb(
                    {
                        **(evidence or {}),
                        "gates": {g["gate_name"]: g["passed"] for g in status.gates},
                    }
                ),
                target["dataset_hash"],
                code_version(),
            ),
        ).fetchone()
        conn.execute(
            queries.INSERT_DEPLOYMENT_STAGE,
            (target["id"], family, "promoted", None, jsonb({"via": "rollback", "reason": reason})),
        )
    return _ledger_entry(row, family, "rollback", target, current)


def _previous_champion(conn, family: str, current: dict | None) -> dict:
    """The most recent earlier champion that left office normally (status 'retired').

    A version that was itself rolled back, or rejected, is never chosen by default.
    """
    current_id = current["id"] if current else None
    for entry in conn.execute(queries.SELECT_LEDGER_FOR_FAMILY, (family,)).fetchall():
        if (
            entry["action"] in ("promote", "rollback")
            and entry["model_version_id"] != current_id
            and entry["version_status"] == "retired"
        ):
            return version_by_number_in(conn, family, entry["version"])
    raise PromotionRefused(f"{family} has no earlier champion to roll back to; use --to VERSION")


def serving_at(db: Database, family: str, at: datetime) -> dict | None:
    """The ledger entry that made the model serving ``family`` at time ``at``."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_SERVING_AT, (family, at)).fetchone()


def ledger(db: Database, family: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LEDGER_FOR_FAMILY, (family,)).fetchall()
