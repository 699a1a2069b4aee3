-- Artifact integrity: a recorded file (model, ONNX export, dataset, out-of-fold predictions,
-- per-bar returns) that is missing from the store or fails its SHA-256.
--
-- Fired by a retrain that finds its champion's files unreadable (the retrain goes on without
-- a comparison) and by the periodic scan of every recorded artifact (artifact_scan). One open
-- alert per record: `details.key` names it, and no second alert fires for the same key
-- until the first is acknowledged.
INSERT INTO ml_ops_alerts (record_type, name, category, severity, condition, message)
VALUES
    ('rule', 'artifact_missing', 'system', 'critical',
     '{"check": "recorded artifact missing or failing its sha256", "dedupe": "details.key"}'::jsonb,
     'A recorded artifact is missing from the store or fails its checksum');

-- Open alerts are looked up by rule and key before each firing.
CREATE INDEX alerts_open_key_idx ON ml_ops_alerts (rule_id, (details->>'key'))
    WHERE record_type = 'alert' AND acknowledged_at IS NULL;
