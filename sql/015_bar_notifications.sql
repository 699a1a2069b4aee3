-- The signal service keeps each symbol's computed features while its stored bars are
-- unchanged (serving/features.py, FeatureCache). It learns of a change from PostgreSQL: any
-- statement that writes market_bars NOTIFYs channel `alphaplus_bars` at commit. One
-- notification per statement, not per row (a 500k-row import sends one), and statement-level
-- so that it also works on a TimescaleDB hypertable. The payload only names the operation:
-- the service drops its cached features and recomputes on the next request. While its
-- notification connection is down it checks each symbol's fingerprint per request instead.

CREATE FUNCTION notify_bars_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('alphaplus_bars', TG_OP);
    RETURN NULL;
END;
$$;

CREATE TRIGGER market_bars_notify_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON market_bars
    FOR EACH STATEMENT EXECUTE FUNCTION notify_bars_changed();
