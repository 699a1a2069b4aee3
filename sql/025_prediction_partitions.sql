-- The prediction log, partitioned by month of the bar (declarative range partitioning).
--
-- Every answer the signal service gives is a row, so the log grows without bound while the
-- monitoring reads want recent bars: the last scored bar of a symbol, the unrealized
-- answers, a version's recent series. With one partition per calendar month (UTC) of
-- bar_ts, a read ordered by bar with a limit (the last scored bar) runs the newest month
-- and stops, and an old month can be archived or dropped whole (DETACH PARTITION) instead
-- of deleted row by row.
--
-- There is no default partition, on purpose: a read ordered by bar across the months
-- (an ordered Append) is only possible when every row's month is known from its partition.
-- So a month must exist before its first row: every writer of the project
-- (serving/prediction_log.write_predictions) calls ensure_prediction_partitions() for its
-- batch's bars in the batch's own transaction, and a row for a month without a partition is
-- refused by PostgreSQL ("no partition of relation ... found for row"), never misfiled.
--
-- The primary key holds the partition key: (id, bar_ts). A prediction's id is the
-- service's own uuid and a replayed spool batch carries the same bar as the first write,
-- so ON CONFLICT (id, bar_ts) DO NOTHING keeps replays at one row per prediction.

ALTER TABLE model_predictions RENAME TO model_predictions_unpartitioned;
ALTER TABLE model_predictions_unpartitioned
    RENAME CONSTRAINT model_predictions_pkey TO model_predictions_unpartitioned_pkey;
-- Index names are unique per schema: the old ones go with the old table (dropped below).
DO $$
DECLARE
    index_name text;
BEGIN
    FOR index_name IN
        SELECT indexname FROM pg_indexes
        WHERE tablename = 'model_predictions_unpartitioned' AND indexname LIKE 'predictions\_%'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name, 'old_' || index_name);
    END LOOP;
END $$;

CREATE TABLE model_predictions (
    id                  uuid             NOT NULL DEFAULT gen_random_uuid(),
    model_version_id    uuid             NOT NULL
        CONSTRAINT model_predictions_model_version_id_fkey REFERENCES model_versioning (id),
    role                text             NOT NULL
        CONSTRAINT model_predictions_role_check
        CHECK (role IN ('champion', 'challenger', 'previous')),
    symbol              text             NOT NULL,
    bar_ts              timestamptz      NOT NULL,
    probability         double precision NOT NULL
        CONSTRAINT model_predictions_probability_check CHECK (probability BETWEEN 0 AND 1),
    signal              smallint         NOT NULL
        CONSTRAINT model_predictions_signal_check CHECK (signal IN (-1, 0, 1)),
    latency_us          double precision,
    predicted_at        timestamptz      NOT NULL DEFAULT now(),
    realized_return     double precision,
    realized_label      smallint,
    realized_at         timestamptz,
    family              text             NOT NULL,
    request_id          text,
    realized_net_return double precision,
    realized_t1         timestamptz,
    CONSTRAINT model_predictions_pkey PRIMARY KEY (id, bar_ts)
) PARTITION BY RANGE (bar_ts);

-- The indexes of migrations 001-017, on every partition.
CREATE INDEX predictions_symbol_ts_idx ON model_predictions (symbol, bar_ts);
CREATE INDEX predictions_unrealized_idx ON model_predictions (bar_ts) WHERE realized_at IS NULL;
CREATE INDEX predictions_version_role_ts_idx ON model_predictions (model_version_id, role, bar_ts);
CREATE INDEX predictions_family_ts_idx ON model_predictions (family, bar_ts);
CREATE INDEX predictions_predicted_at_idx ON model_predictions (predicted_at);
CREATE INDEX predictions_family_unrealized_idx
    ON model_predictions (family, bar_ts) WHERE realized_at IS NULL;
CREATE INDEX predictions_realized_series_idx
    ON model_predictions (family, model_version_id, role) WHERE realized_at IS NOT NULL;
CREATE INDEX predictions_series_ts_idx ON model_predictions (model_version_id, role, symbol, bar_ts);
CREATE INDEX predictions_pending_answers_idx
    ON model_predictions (family, model_version_id, role, symbol, bar_ts, predicted_at)
    INCLUDE (signal)
    WHERE realized_at IS NULL;

-- The month partition holding `at` (UTC), created if missing; true if it was created.
-- CREATE TABLE + ATTACH rather than CREATE TABLE ... PARTITION OF: attaching takes a SHARE
-- UPDATE EXCLUSIVE lock on the log, which writers and readers pass, where PARTITION OF
-- would take an exclusive one. Adding the month's foreign key still waits for open writes
-- to model_versioning: the prediction_months sensor makes months ahead of their first row,
-- so that writers seldom call this for a month that is missing. SECURITY DEFINER: the runtime role (where a separate
-- migration role owns the schema) creates months as the owner, and may do nothing else to
-- the table; search_path pinned (pg_catalog first, implicitly; the temporary schema last)
-- so the names below cannot be redirected.
CREATE FUNCTION ensure_prediction_partition(at timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    -- Month arithmetic on UTC wall time: a month added to a timestamptz in a session time
    -- zone other than UTC would not land on the next UTC month's start.
    month_utc timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    month_start timestamptz := month_utc AT TIME ZONE 'UTC';
    month_end timestamptz := (month_utc + interval '1 month') AT TIME ZONE 'UTC';
    partition_name text := 'model_predictions_' || to_char(month_utc, 'YYYY_MM');
BEGIN
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Two writers creating the same month: the second waits here (the lock conflicts with
    -- itself, not with reads or inserts), then sees the first's month and stops.
    LOCK TABLE ONLY model_predictions IN SHARE UPDATE EXCLUSIVE MODE;
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I (LIKE model_predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        partition_name);
    EXECUTE format(
        'ALTER TABLE model_predictions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, month_start, month_end);
    RETURN true;
END $$;

-- Every month from `first` to `last` (inclusive); how many were created.
CREATE FUNCTION ensure_prediction_partitions(first timestamptz, last timestamptz)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT count(*) FILTER (WHERE created)::integer
    FROM generate_series(date_trunc('month', first AT TIME ZONE 'UTC'),
                         last AT TIME ZONE 'UTC', interval '1 month') AS m,
         LATERAL ensure_prediction_partition(m AT TIME ZONE 'UTC') AS created
$$;

-- The months already written.
SELECT ensure_prediction_partition(month)
FROM (SELECT DISTINCT date_trunc('month', bar_ts, 'UTC') AS month
      FROM model_predictions_unpartitioned) written;

INSERT INTO model_predictions
    (id, model_version_id, role, symbol, bar_ts, probability, signal, latency_us,
     predicted_at, realized_return, realized_label, realized_at, family, request_id,
     realized_net_return, realized_t1)
SELECT id, model_version_id, role, symbol, bar_ts, probability, signal, latency_us,
       predicted_at, realized_return, realized_label, realized_at, family, request_id,
       realized_net_return, realized_t1
FROM model_predictions_unpartitioned;

DROP TABLE model_predictions_unpartitioned;
