"""Fired alerts: rows of ml_ops_alerts (record_type 'alert') under a rule row.

The one place an alert is raised. A rule row says the alert's category and severity and
whether it is enabled; an alert names its subject in ``details['key']``, and while an alert
with the same rule and key is open (unacknowledged) no second one fires: a periodic check
that finds the same problem every day raises it once, until someone acknowledges it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb

log = logging.getLogger(__name__)

_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass(frozen=True)
class FiredAlert:
    id: str
    rule: str
    severity: str
    new: bool
    """False when an open alert with the same rule and key was found instead."""

    def sentence(self) -> str:
        return f"alert {self.id} {'raised' if self.new else 'already open'}"


def fire_alert(
    conn_or_db: Database | psycopg.Connection, rule_name: str, message: str, details: dict
) -> FiredAlert | None:
    """Raise an alert under rule ``rule_name``, or return the open one with the same
    ``details['key']``; None when the rule is disabled. A connection passed in is used in
    its own transaction (a savepoint), so the alert commits or rolls back with the caller's
    work; a Database commits it at once."""
    if isinstance(conn_or_db, Database):
        with conn_or_db.connection() as conn:
            return fire_alert(conn, rule_name, message, details)
    conn = conn_or_db
    with conn.transaction():
        rule = conn.execute(queries.SELECT_ALERT_RULE, (rule_name,)).fetchone()
        if rule is None:
            raise LookupError(f"no alert rule named {rule_name!r} in ml_ops_alerts")
        if not rule["enabled"]:
            log.info("alert rule %s is disabled; not raised: %s", rule_name, message)
            return None
        key = details.get("key")
        if key is not None:
            conn.execute(queries.LOCK_ALERT_KEY, (f"{rule_name}:{key}",))
            found = conn.execute(
                queries.SELECT_OPEN_ALERT_BY_KEY, (rule["id"], str(key))
            ).fetchone()
            if found is not None:
                return FiredAlert(str(found["id"]), rule_name, rule["severity"], new=False)
        row = conn.execute(
            queries.INSERT_ALERT,
            (
                rule["id"],
                rule_name,
                rule["category"],
                rule["severity"],
                message,
                jsonb(details),
            ),
        ).fetchone()
    log.log(_LEVEL.get(rule["severity"], logging.WARNING), "alert %s: %s", rule_name, message)
    return FiredAlert(str(row["id"]), rule_name, rule["severity"], new=True)


def open_alerts(db: Database, rule_name: str | None = None) -> list[dict]:
    """Unacknowledged alerts, oldest first; of one rule when ``rule_name`` is given."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_OPEN_ALERTS, (rule_name, rule_name)).fetchall()


def acknowledge_alert(db: Database, alert_id: str, by: str) -> bool:
    """Mark an open alert acknowledged; False when it was not open. The next check that
    finds the same problem raises a new alert."""
    with db.connection() as conn:
        return conn.execute(queries.ACKNOWLEDGE_ALERT, (by, alert_id)).fetchone() is not None
