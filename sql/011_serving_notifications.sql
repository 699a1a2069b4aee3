-- Serving learns of model changes from PostgreSQL instead of polling tight loops.
--
-- The signal service LISTENs on channel `alphaplus_serving`; these triggers NOTIFY it when
-- what should serve may have changed: a ledger row (promotion, rollback, retirement) or a
-- version entering or leaving the champion or challenger status (a new challenger has no
-- ledger row). The payload only says which family and why: the service re-reads the state
-- from the tables, so a lost or coalesced notification costs nothing but latency, and the
-- service's periodic poll covers the time its notification connection is down.
-- NOTIFY is delivered at commit, so a rolled-back promotion wakes nobody.

CREATE FUNCTION notify_serving_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('alphaplus_serving', json_build_object(
        'family', NEW.family,
        'reason', 'ledger:' || NEW.action,
        'version_id', NEW.model_version_id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER model_promotion_ledger_notify_serving
    AFTER INSERT ON model_promotion_ledger
    FOR EACH ROW EXECUTE FUNCTION notify_serving_ledger();

CREATE FUNCTION notify_serving_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('alphaplus_serving', json_build_object(
        'family', NEW.family,
        'reason', 'status:' || OLD.status || '->' || NEW.status,
        'version_id', NEW.id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER model_versioning_notify_serving
    AFTER UPDATE OF status ON model_versioning
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND (OLD.status IN ('challenger', 'champion')
               OR NEW.status IN ('challenger', 'champion')))
    EXECUTE FUNCTION notify_serving_status();

-- A version that should serve but cannot be loaded (missing file, failed checksum, a file
-- onnxruntime refuses): the previous model keeps serving. One open alert per version.
INSERT INTO ml_ops_alerts (record_type, name, category, severity, condition, message)
VALUES
    ('rule', 'serving_load_failed', 'system', 'critical',
     '{"check": "a version due to serve failed to load (checksum, file, onnxruntime)", "dedupe": "details.key"}'::jsonb,
     'A model version due to serve could not be loaded; the previous one keeps serving');
