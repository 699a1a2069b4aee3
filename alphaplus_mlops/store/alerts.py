"""Alerts: rows of ml_ops_alerts (record_type 'alert') under a rule row, and their delivery.

The one place an alert is raised, repeated, acknowledged or resolved (sql/018). A rule row
says the alert's category and severity and whether it is enabled; an alert names its
subject (what it is about: ``family:catboost``, ``model_versioning:<id>``, a job and
partition). While an alert of the same rule and subject is unresolved, raising it again
updates that row (last seen, occurrences, latest message and details): a periodic check
that finds the same problem every tick keeps one row. An evaluator that finds the condition
gone resolves it; the next occurrence after that is a new alert.

Raising a new alert (and resolving one) also writes one delivery per enabled channel in the
same transaction: the log channel is written at once, webhooks are left pending for
``alerting.delivery`` (the alert delivery sensor), so a dead endpoint never blocks the code
that raised the alert.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

import psycopg

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb

log = logging.getLogger(__name__)

_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
STATES = ("open", "acknowledged", "resolved")


@dataclass(frozen=True)
class FiredAlert:
    id: str
    rule: str
    severity: str
    new: bool
    """False when an unresolved alert of the same rule and subject was updated instead."""
    state: str = "open"
    occurrences: int = 1

    def sentence(self) -> str:
        if self.new:
            return f"alert {self.id} raised"
        return f"alert {self.id} already {self.state}"


def _connection(conn_or_db: Database | psycopg.Connection):
    """A Database lends a connection (committing on return); a connection is used as is."""
    if isinstance(conn_or_db, Database):
        return conn_or_db.connection()
    return nullcontext(conn_or_db)


def fire_alert(
    conn_or_db: Database | psycopg.Connection,
    rule_name: str,
    message: str,
    details: dict,
    *,
    subject: str | None = None,
) -> FiredAlert | None:
    """Raise an alert under rule ``rule_name`` about ``subject`` (default:
    ``details['key']``), or update the unresolved one about the same subject; None when the
    rule is disabled. A connection passed in is used in its own transaction (a savepoint),
    so the alert commits or rolls back with the caller's work; a Database commits it at
    once. Raises LookupError for an unknown rule and ValueError without a subject."""
    subject = subject if subject is not None else details.get("key")
    if subject is None:
        raise ValueError(f"alert {rule_name!r} needs a subject (or details['key'])")
    subject = str(subject)
    with _connection(conn_or_db) as conn, conn.transaction():
        rule = conn.execute(queries.SELECT_ALERT_RULE, (rule_name,)).fetchone()
        if rule is None:
            raise LookupError(f"no alert rule named {rule_name!r} in ml_ops_alerts")
        if not rule["enabled"]:
            log.info("alert rule %s is disabled; not raised: %s", rule_name, message)
            return None
        conn.execute(queries.LOCK_ALERT_KEY, (f"{rule_name}:{subject}",))
        found = conn.execute(queries.SELECT_UNRESOLVED_ALERT, (rule["id"], subject)).fetchone()
        if found is not None:
            row = conn.execute(
                queries.REPEAT_ALERT, (message, jsonb(details), found["id"])
            ).fetchone()
            return FiredAlert(
                str(row["id"]), rule_name, rule["severity"], False, row["state"], row["occurrences"]
            )
        row = conn.execute(
            queries.INSERT_ALERT,
            (
                rule["id"],
                rule_name,
                rule["category"],
                rule["severity"],
                message,
                jsonb(details),
                subject,
            ),
        ).fetchone()
        _enqueue(conn, row["id"], rule["severity"], "raised")
    log.log(
        _LEVEL.get(rule["severity"], logging.WARNING),
        "alert %s [%s]: %s",
        rule_name,
        subject,
        message,
    )
    return FiredAlert(str(row["id"]), rule_name, rule["severity"], True)


def resolve_alert(
    conn_or_db: Database | psycopg.Connection, rule_name: str, subject: str, resolution: str
) -> bool:
    """Resolve the unresolved alert of ``rule_name`` about ``subject``: its condition has
    cleared. False when there was none."""
    return bool(_resolve(conn_or_db, rule_name, str(subject), [], None, resolution))


def resolve_cleared(
    conn_or_db: Database | psycopg.Connection,
    rule_name: str,
    still_firing: set[str],
    resolution: str,
    prefix: str | None = None,
) -> int:
    """Resolve every unresolved alert of ``rule_name`` whose subject is not in
    ``still_firing`` (and starts with ``prefix``, when given): for an evaluator that has
    just checked every subject of its rule (or every one under the prefix). Returns how
    many were resolved."""
    return len(_resolve(conn_or_db, rule_name, None, sorted(still_firing), prefix, resolution))


def _resolve(conn_or_db, rule_name, subject, still_firing, prefix, resolution) -> list[dict]:
    with _connection(conn_or_db) as conn, conn.transaction():
        resolved = conn.execute(
            queries.RESOLVE_ALERT,
            {
                "rule": rule_name,
                "subject": subject,
                "still_firing": still_firing,
                "prefix": prefix,
                "resolution": resolution,
            },
        ).fetchall()
        for row in resolved:
            _enqueue(conn, row["id"], row["severity"], "resolved")
    for row in resolved:
        log.info("alert %s (%s) resolved: %s", row["id"], rule_name, resolution)
    return resolved


def _enqueue(conn: psycopg.Connection, alert_id, severity: str, event: str) -> None:
    """One delivery per enabled channel that takes this severity: the log channel's is
    written to the log by the caller and recorded delivered, a webhook's waits."""
    for channel in conn.execute(queries.SELECT_ALERT_CHANNELS).fetchall():
        floor = (channel["config"] or {}).get("min_severity", "info")
        if SEVERITY_RANK.get(severity, 2) < SEVERITY_RANK.get(floor, 0):
            continue
        immediate = channel["kind"] == "log"
        conn.execute(
            queries.INSERT_ALERT_DELIVERY,
            (
                alert_id,
                channel["id"],
                event,
                "delivered" if immediate else "pending",
                1 if immediate else 0,
                "delivered" if immediate else "pending",
            ),
        )


def list_alerts(
    db: Database, state: str | None = None, rule_name: str | None = None, limit: int = 1000
) -> list[dict]:
    """Alerts oldest first, of one state and one rule when given."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown alert state {state!r}; one of {', '.join(STATES)}")
    with db.connection() as conn:
        return conn.execute(
            queries.SELECT_ALERTS, {"state": state, "rule": rule_name, "limit": limit}
        ).fetchall()


def open_alerts(db: Database, rule_name: str | None = None) -> list[dict]:
    """Alerts nobody has acknowledged yet and whose condition has not cleared."""
    return list_alerts(db, "open", rule_name)


def acknowledge_alert(db: Database, alert_id: str, by: str) -> bool:
    """Mark an open alert acknowledged by ``by``; False when it was not open (unknown,
    already acknowledged, or resolved). Repeats of an acknowledged alert update it without
    raising a new one, until its condition clears."""
    with db.connection() as conn:
        return conn.execute(queries.ACKNOWLEDGE_ALERT, (by, alert_id)).fetchone() is not None


def alert_state(db: Database, alert_id: str) -> str | None:
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_ALERT_STATE, (alert_id,)).fetchone()
    return row["state"] if row else None


def alert_deliveries(db: Database, alert_id: str | None = None) -> list[dict]:
    with db.connection() as conn:
        return conn.execute(queries.SELECT_ALERT_DELIVERIES, {"alert": alert_id}).fetchall()


# The delivery outbox, drained by alerting.delivery ----------------------------------------


def claim_due_delivery(db: Database, lease_seconds: float) -> dict | None:
    """The next pending delivery whose time has come, leased to this caller for
    ``lease_seconds`` with its attempt counted; None when nothing is due."""
    with db.connection() as conn:
        return conn.execute(queries.CLAIM_ALERT_DELIVERY, (lease_seconds,)).fetchone()


def delivery_succeeded(db: Database, delivery_id) -> None:
    with db.connection() as conn:
        conn.execute(queries.DELIVERED_ALERT, (delivery_id,))


def delivery_failed(
    db: Database, delivery_id, error: str, max_attempts: int, backoff_seconds: float
) -> dict:
    """Record a failed attempt: pending again after the backoff, or 'failed' for good once
    ``max_attempts`` are spent. Returns the new status, attempts and next attempt time."""
    with db.connection() as conn:
        return conn.execute(
            queries.FAILED_ALERT_DELIVERY,
            {
                "id": delivery_id,
                "error": error[:2000],
                "max_attempts": max_attempts,
                "backoff": backoff_seconds,
            },
        ).fetchone()


def alert_rule(conn_or_db: Database | psycopg.Connection, rule_name: str) -> dict | None:
    """The rule row (id, name, category, severity, enabled, condition), or None."""
    with _connection(conn_or_db) as conn:
        return conn.execute(queries.SELECT_ALERT_RULE, (rule_name,)).fetchone()
