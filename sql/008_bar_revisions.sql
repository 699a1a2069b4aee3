-- Bars are not restated without a trace. Every write of bars through the store is an import
-- (source: a file's absolute path, or the sample or simulator that produced the bars, with the
-- file's SHA-256), and every stored bar it changed leaves a revision row with its old and new
-- values. Both tables are append-only, like the promotion ledger.

CREATE TABLE market_bar_imports (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    source        text        NOT NULL CHECK (source <> ''),
    source_sha256 text        CHECK (source_sha256 ~ '^[0-9a-f]{64}$'),
    received      integer     NOT NULL CHECK (received >= 0),
    inserted      integer     NOT NULL CHECK (inserted >= 0),
    restated      integer     NOT NULL CHECK (restated >= 0),
    unchanged     integer     NOT NULL CHECK (unchanged >= 0),
    imported_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (inserted + restated + unchanged = received)
);
CREATE INDEX market_bar_imports_time_idx ON market_bar_imports (imported_at);
CREATE INDEX market_bar_imports_source_idx ON market_bar_imports (source);

CREATE TABLE market_bar_revisions (
    id              bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    import_id       uuid             NOT NULL REFERENCES market_bar_imports (id),
    symbol          text             NOT NULL,
    ts              timestamptz      NOT NULL,
    old_open        double precision NOT NULL,
    old_high        double precision NOT NULL,
    old_low         double precision NOT NULL,
    old_close       double precision NOT NULL,
    old_volume      double precision NOT NULL,
    old_source      text             NOT NULL,
    old_ingested_at timestamptz      NOT NULL,
    new_open        double precision NOT NULL,
    new_high        double precision NOT NULL,
    new_low         double precision NOT NULL,
    new_close       double precision NOT NULL,
    new_volume      double precision NOT NULL,
    new_source      text             NOT NULL,
    revised_at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX market_bar_revisions_bar_idx ON market_bar_revisions (symbol, ts);
CREATE INDEX market_bar_revisions_import_idx ON market_bar_revisions (import_id);

CREATE FUNCTION reject_bar_history_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER market_bar_imports_no_update_delete
    BEFORE UPDATE OR DELETE ON market_bar_imports
    FOR EACH ROW EXECUTE FUNCTION reject_bar_history_change();
CREATE TRIGGER market_bar_imports_no_truncate
    BEFORE TRUNCATE ON market_bar_imports
    FOR EACH STATEMENT EXECUTE FUNCTION reject_bar_history_change();
CREATE TRIGGER market_bar_revisions_no_update_delete
    BEFORE UPDATE OR DELETE ON market_bar_revisions
    FOR EACH ROW EXECUTE FUNCTION reject_bar_history_change();
CREATE TRIGGER market_bar_revisions_no_truncate
    BEFORE TRUNCATE ON market_bar_revisions
    FOR EACH STATEMENT EXECUTE FUNCTION reject_bar_history_change();
