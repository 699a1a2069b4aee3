-- Alerts that reach a person: a lifecycle, deduplication by subject, and delivery channels.
--
-- An alert row (record_type 'alert') now has a state: open (nobody has looked), acknowledged
-- (someone has, the condition still holds) or resolved (the condition cleared). Its subject
-- names what it is about (a family, a version, a job and partition, a recorded file); while
-- an alert of the same rule and subject is unresolved, a repeat updates it (last seen, count,
-- latest message and details) instead of adding a row. Once resolved, the next occurrence is
-- a new alert. Before this migration the subject lived in details->>'key' and an alert was
-- "open" until acknowledged; both carry over.

ALTER TABLE ml_ops_alerts
    ADD COLUMN state         text CHECK (state IN ('open', 'acknowledged', 'resolved')),
    ADD COLUMN subject       text,
    ADD COLUMN last_seen_at  timestamptz,
    ADD COLUMN occurrences   integer CHECK (occurrences >= 1),
    ADD COLUMN resolved_at   timestamptz,
    ADD COLUMN resolution    text;

UPDATE ml_ops_alerts
SET state = CASE WHEN acknowledged_at IS NULL THEN 'open' ELSE 'acknowledged' END,
    subject = coalesce(details->>'key', id::text),
    last_seen_at = fired_at,
    occurrences = 1
WHERE record_type = 'alert';

-- Of several unresolved alerts of one rule and subject (possible before: a new one fired
-- after an acknowledgement), the newest stays; the older ones are resolved as superseded.
UPDATE ml_ops_alerts a
SET state = 'resolved', resolved_at = now(), resolution = 'superseded by a later alert'
WHERE a.record_type = 'alert' AND EXISTS (
    SELECT 1 FROM ml_ops_alerts b
    WHERE b.record_type = 'alert' AND b.rule_id = a.rule_id AND b.subject = a.subject
      AND (b.fired_at, b.id) > (a.fired_at, a.id));

ALTER TABLE ml_ops_alerts
    ADD CONSTRAINT alert_lifecycle_present CHECK (
        record_type = 'rule'
        OR (state IS NOT NULL AND subject IS NOT NULL AND last_seen_at IS NOT NULL
            AND occurrences IS NOT NULL)),
    ADD CONSTRAINT alert_resolved_at_with_state CHECK (
        (state = 'resolved') = (resolved_at IS NOT NULL));

-- One unresolved alert per rule and subject, kept by the database under concurrent firing.
CREATE UNIQUE INDEX alerts_unresolved_subject_idx ON ml_ops_alerts (rule_id, subject)
    WHERE record_type = 'alert' AND state <> 'resolved';
CREATE INDEX alerts_state_idx ON ml_ops_alerts (state, last_seen_at) WHERE record_type = 'alert';
DROP INDEX alerts_open_idx;
DROP INDEX alerts_open_key_idx;

-- Where alerts go. A channel is a row: 'log' writes to the process log when the alert is
-- raised; 'webhook' POSTs JSON to config.url, from the delivery sensor, never from the code
-- that raised the alert (a dead endpoint must not block a sensor or a training run).
-- config: url, timeout_seconds, max_attempts, backoff_seconds (doubled per attempt),
-- min_severity (info < warning < critical), headers (extra HTTP headers, no secrets: an
-- Authorization value is read from the environment variable named in config.token_env).
CREATE TABLE alert_channels (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE,
    kind        text        NOT NULL CHECK (kind IN ('log', 'webhook')),
    config      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'webhook' OR config ? 'url')
);

INSERT INTO alert_channels (name, kind, config)
VALUES ('log', 'log', '{"min_severity": "info"}'::jsonb);

-- One row per (alert, channel, event) to deliver: an outbox written in the same transaction
-- as the alert, so an alert is never raised without its deliveries, and drained by the
-- delivery sensor with retries and backoff. Events: 'raised' (a new alert) and 'resolved'.
CREATE TABLE alert_deliveries (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id        uuid        NOT NULL REFERENCES ml_ops_alerts (id),
    channel_id      uuid        NOT NULL REFERENCES alert_channels (id),
    event           text        NOT NULL CHECK (event IN ('raised', 'resolved')),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (alert_id, channel_id, event)
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Stale market data: a symbol whose bars stopped while the market's kept coming (counted in
-- the market's bar times, so weekends are no gap), and optionally the whole market by the
-- wall clock (max_age_hours; null for a replay, which lives in the past).
INSERT INTO ml_ops_alerts (record_type, name, category, severity, condition, message)
VALUES
    ('rule', 'stale_market_data', 'pipeline', 'warning',
     '{"max_missed_bars": 3, "max_age_hours": null}'::jsonb,
     'Bars stopped arriving for a symbol (or for the whole market)');
