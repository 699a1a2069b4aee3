"""Draining the alert delivery outbox (sql/018) to webhooks, with retries and backoff.

Called by the alert delivery sensor each tick, never by the code that raised the alert. One
tick works for at most ``budget_seconds``; each POST has its channel's timeout; a failed
attempt is retried on a later tick after ``backoff_seconds * 2^(attempt-1)``, and after
``max_attempts`` the delivery is marked failed with its last error. A channel's bearer
token is read from the environment variable its config names (``token_env``), never from
the row.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

from alphaplus_mlops.store.alerts import claim_due_delivery, delivery_failed, delivery_succeeded
from alphaplus_mlops.store.db import Database, json_safe

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 30.0
DEFAULT_BUDGET_SECONDS = 10.0


class DeliveryError(RuntimeError):
    """A webhook did not take the alert: unreachable, timed out, or a non-2xx answer."""


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        return f"{self.delivered} delivered, {self.retrying} to retry, {self.failed} given up"


def alert_payload(row: dict) -> dict:
    """The JSON a webhook receives: the alert and the event (raised or resolved)."""
    keys = (
        "rule", "category", "severity", "subject", "state", "message", "details",
        "first_seen_at", "last_seen_at", "occurrences", "resolved_at", "resolution",
    )  # fmt: skip
    body = {"event": row["event"], "alert_id": str(row["alert_id"])}
    for key in keys:
        value = row.get(key)
        body[key] = value.isoformat() if isinstance(value, datetime) else value
    return json_safe(body)


def post_json(url: str, body: dict, timeout: float, headers: dict | None = None) -> int:
    """POST ``body`` as JSON; the HTTP status on 2xx, DeliveryError otherwise."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {url}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{url} unreachable: {reason}") from exc


def _headers(config: dict) -> dict:
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    token_env = config.get("token_env")
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise DeliveryError(f"the channel's token variable {token_env} is not set")
        headers["authorization"] = f"Bearer {token}"
    return headers


def deliver_due(db: Database, budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> DeliveryReport:
    """Deliver pending deliveries whose time has come, until none is due or the budget is
    spent (a delivery is not started with less than its timeout left)."""
    report = DeliveryReport()
    deadline = time.monotonic() + budget_seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # The lease outlasts the attempt, so a second drainer never posts it twice.
        row = claim_due_delivery(db, lease_seconds=max(60.0, 2 * budget_seconds))
        if row is None:
            break
        config = row["config"] or {}
        timeout = float(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        try:
            if row["kind"] != "webhook":
                raise DeliveryError(f"channel kind {row['kind']!r} is not delivered here")
            post_json(
                config["url"], alert_payload(row), min(timeout, max(left, 0.1)), _headers(config)
            )
        except DeliveryError as exc:
            outcome = delivery_failed(
                db,
                row["id"],
                str(exc),
                int(config.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
                float(config.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)),
            )
            message = (
                f"alert {row['alert_id']} to {row['channel']} (attempt {row['attempts']}): {exc}"
            )
            report.errors.append(message)
            if outcome["status"] == "failed":
                report.failed += 1
                log.error("gave up delivering %s", message)
            else:
                report.retrying += 1
                log.warning("delivery failed, retried later: %s", message)
        else:
            delivery_succeeded(db, row["id"])
            report.delivered += 1
    return report
