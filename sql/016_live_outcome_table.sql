-- Live outcomes, one row per (version, role, symbol, bar): the first logged answer to that
-- bar and what it turned out to be.
--
-- The prediction log holds every answer, and a bar asked for by several requests has
-- several rows (about 13 per bar in the P5 bench). live_performance and the A/B test read
-- one answer per bar over windows of up to 252 bars; read from the log, that is a DISTINCT
-- over every duplicate of the window (140 ms at 10 million rows). prediction_outcomes
-- fills this table in the transaction that realizes the log's rows, so the windows are
-- read by primary key and each row is read once.
CREATE TABLE IF NOT EXISTS live_outcomes (
    model_version_id uuid NOT NULL REFERENCES model_versioning (id),
    role text NOT NULL CHECK (role IN ('champion', 'challenger', 'previous')),
    bar_ts timestamptz NOT NULL,
    symbol text NOT NULL,
    family text NOT NULL,
    probability double precision NOT NULL,
    signal smallint NOT NULL,
    predicted_at timestamptz NOT NULL,
    realized_return double precision,
    realized_label smallint NOT NULL,
    realized_t1 timestamptz,
    realized_net_return double precision,
    realized_at timestamptz NOT NULL DEFAULT now(),
    -- The row as live_performance reads it, packed by the database when the row is
    -- written: fixed-width big-endian fields in PostgreSQL's binary send format
    -- (timestamptz: int8 microseconds since 2000-01-01; float8; int2; int2; float8, NaN
    -- for an unknown net return). A window of 12,600 rows is then one string_agg that
    -- NumPy reads whole (store/live.py WINDOW_RECORD), instead of a Python object per value
    -- or a per-row packing at read time (half the query's time).
    packed bytea NOT NULL GENERATED ALWAYS AS (
        timestamptz_send(bar_ts) || float8send(probability) || int2send(signal)
        || int2send(realized_label) || float8send(coalesce(realized_net_return, 'NaN'))
    ) STORED,
    PRIMARY KEY (model_version_id, role, bar_ts, symbol)
);

-- Outcomes realized before this migration.
INSERT INTO live_outcomes
    (model_version_id, role, bar_ts, symbol, family, probability, signal, predicted_at,
     realized_return, realized_label, realized_t1, realized_net_return, realized_at)
SELECT DISTINCT ON (model_version_id, role, bar_ts, symbol)
       model_version_id, role, bar_ts, symbol, family, probability, signal, predicted_at,
       realized_return, realized_label, realized_t1, realized_net_return, realized_at
FROM model_predictions
WHERE realized_at IS NOT NULL
ORDER BY model_version_id, role, bar_ts, symbol, predicted_at
ON CONFLICT DO NOTHING;
