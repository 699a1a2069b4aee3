-- Reading live windows and pending answers without walking a series bar by bar or
-- visiting the table's pages.
--
-- The window starts at a series' 252nd-last realized bar. live_outcomes has one row per
-- symbol and bar, so finding that bar there took a loose index scan, one probe per bar
-- (2.5 ms of the query at 10 million logged predictions). live_outcome_bars holds each
-- (version, role) series' realized bars once: the start is the 252nd entry of one index
-- range. prediction_outcomes fills it in the statement that fills live_outcomes
-- (INSERT_LIVE_OUTCOMES_FROM_STAGED), from the rows that statement inserted.
CREATE TABLE IF NOT EXISTS live_outcome_bars (
    model_version_id uuid NOT NULL REFERENCES model_versioning (id),
    role text NOT NULL CHECK (role IN ('champion', 'challenger', 'previous')),
    bar_ts timestamptz NOT NULL,
    PRIMARY KEY (model_version_id, role, bar_ts)
);

INSERT INTO live_outcome_bars (model_version_id, role, bar_ts)
SELECT DISTINCT model_version_id, role, bar_ts FROM live_outcomes
ON CONFLICT DO NOTHING;

-- The window's rows are a range of the primary key, but a series' rows are spread over
-- the table's pages among every other series' (they are written bar by bar across the
-- fleet): 12,600 rows visited 12,600 heap tuples. With the packed record in the index the
-- range is read from the index alone (once VACUUM, or autovacuum's insert threshold, has
-- marked the pages all-visible).
ALTER TABLE live_outcomes
    DROP CONSTRAINT live_outcomes_pkey,
    ADD CONSTRAINT live_outcomes_pkey
        PRIMARY KEY (model_version_id, role, bar_ts, symbol) INCLUDE (packed);

-- prediction_outcomes' pending answers (SELECT_PENDING_SERIES): each unrealized (series,
-- bar)'s first answer, read in order from this index alone; migration 014's index lacked
-- predicted_at and signal, so the query walked the series one by one through the whole
-- log's index and the table. Unrealized rows only, so it stays as small as the backlog.
DROP INDEX IF EXISTS predictions_pending_series_idx;
CREATE INDEX IF NOT EXISTS predictions_pending_answers_idx
    ON model_predictions (family, model_version_id, role, symbol, bar_ts, predicted_at)
    INCLUDE (signal)
    WHERE realized_at IS NULL;
