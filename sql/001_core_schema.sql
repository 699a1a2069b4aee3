-- The seed's fifteen tables, plus market bars, logged predictions and the promotion ledger.
-- UUID keys (gen_random_uuid is built into PostgreSQL 13+), JSONB for configuration and
-- evidence, timestamptz everywhere.

-- Market data ---------------------------------------------------------------------------

CREATE TABLE market_bars (
    symbol       text             NOT NULL CHECK (symbol <> ''),
    ts           timestamptz      NOT NULL,
    open         double precision NOT NULL CHECK (open > 0),
    high         double precision NOT NULL,
    low          double precision NOT NULL CHECK (low > 0),
    close        double precision NOT NULL CHECK (close > 0),
    volume       double precision NOT NULL CHECK (volume >= 0),
    source       text             NOT NULL,
    ingested_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts),
    CHECK (high >= greatest(open, close)),
    CHECK (low <= least(open, close))
);
CREATE INDEX market_bars_ts_idx ON market_bars (ts);
CREATE INDEX market_bars_source_idx ON market_bars (source);

-- Datasets and training -----------------------------------------------------------------

CREATE TABLE training_data_management (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    content_hash   text        NOT NULL UNIQUE,
    symbols        text[]      NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    n_rows         integer     NOT NULL CHECK (n_rows >= 0),
    class_balance  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    feature_names  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    label_config   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    artifact_uri   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end >= window_start)
);
CREATE INDEX training_data_created_idx ON training_data_management (created_at);

CREATE TABLE automated_retraining_triggers (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text        NOT NULL UNIQUE,
    trigger_type     text        NOT NULL
                     CHECK (trigger_type IN ('drift', 'performance', 'time', 'manual')),
    config           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    cooldown_seconds integer     NOT NULL DEFAULT 0 CHECK (cooldown_seconds >= 0),
    priority         integer     NOT NULL DEFAULT 0,
    enabled          boolean     NOT NULL DEFAULT true,
    last_fired_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retraining_triggers_type_idx ON automated_retraining_triggers (trigger_type, enabled);

CREATE TABLE model_training_jobs (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family             text        NOT NULL CHECK (family IN ('catboost', 'xgboost', 'lightgbm')),
    trigger_type       text        NOT NULL DEFAULT 'manual'
                       CHECK (trigger_type IN ('drift', 'performance', 'time', 'manual')),
    trigger_id         uuid        REFERENCES automated_retraining_triggers (id),
    priority           integer     NOT NULL DEFAULT 0,
    status             text        NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    dagster_run_id     text,
    requested_by       text,
    reason             text,
    dataset_id         uuid        REFERENCES training_data_management (id),
    config             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    iteration          integer,
    total_iterations   integer,
    last_metric_name   text,
    last_metric_value  double precision,
    progress_updated_at timestamptz,
    cpu_seconds        double precision,
    peak_rss_bytes     bigint,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz
);
CREATE INDEX training_jobs_status_idx ON model_training_jobs (status);
CREATE INDEX training_jobs_family_created_idx ON model_training_jobs (family, created_at);
CREATE INDEX training_jobs_run_idx ON model_training_jobs (dagster_run_id);

-- Model registry ------------------------------------------------------------------------

CREATE TABLE model_versioning (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family            text        NOT NULL CHECK (family IN ('catboost', 'xgboost', 'lightgbm')),
    version           integer     NOT NULL CHECK (version > 0),
    model_name        text        NOT NULL,
    status            text        NOT NULL DEFAULT 'candidate'
                      CHECK (status IN ('candidate', 'challenger', 'champion', 'retired', 'rejected')),
    dataset_id        uuid        REFERENCES training_data_management (id),
    training_job_id   uuid        REFERENCES model_training_jobs (id),
    parent_version_id uuid        REFERENCES model_versioning (id),
    params            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    feature_names     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    code_version      text,
    native_uri        text,
    native_sha256     text        CHECK (native_sha256 ~ '^[0-9a-f]{64}$'),
    onnx_uri          text,
    onnx_sha256       text        CHECK (onnx_sha256 ~ '^[0-9a-f]{64}$'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (family, version)
);
CREATE INDEX model_versioning_status_idx ON model_versioning (status);
CREATE INDEX model_versioning_name_idx ON model_versioning (model_name);
CREATE INDEX model_versioning_created_idx ON model_versioning (family, created_at);
-- The database itself guarantees at most one champion per family.
CREATE UNIQUE INDEX model_versioning_one_champion_idx
    ON model_versioning (family) WHERE status = 'champion';

CREATE TABLE model_performance_tracking (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version_id  uuid        NOT NULL REFERENCES model_versioning (id),
    dataset_id        uuid        REFERENCES training_data_management (id),
    split             text        NOT NULL,
    fold              integer,
    n_rows            integer     NOT NULL CHECK (n_rows >= 0),
    ml_metrics        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    business_metrics  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    evaluated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performance_tracking_model_idx ON model_performance_tracking (model_version_id, evaluated_at);

-- Decisions, deployment, experiments ----------------------------------------------------

CREATE TABLE automated_decision_making (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    decision_type     text        NOT NULL,
    family            text,
    model_version_id  uuid        REFERENCES model_versioning (id),
    rule              text        NOT NULL,
    inputs            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    outcome           text        NOT NULL,
    reasons           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    decided_by        text        NOT NULL DEFAULT 'system',
    decided_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_time_idx ON automated_decision_making (decided_at);
CREATE INDEX decisions_model_idx ON automated_decision_making (model_version_id);

CREATE TABLE model_deployment_pipeline (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version_id  uuid        NOT NULL REFERENCES model_versioning (id),
    family            text        NOT NULL,
    stage             text        NOT NULL
                      CHECK (stage IN ('gated', 'shadow', 'promoted', 'rolled_back', 'rejected')),
    decision_id       uuid        REFERENCES automated_decision_making (id),
    details           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_stage_idx ON model_deployment_pipeline (stage, created_at);
CREATE INDEX deployment_model_idx ON model_deployment_pipeline (model_version_id);

CREATE TABLE ab_testing_framework (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family                 text        NOT NULL,
    champion_version_id    uuid        NOT NULL REFERENCES model_versioning (id),
    challenger_version_id  uuid        NOT NULL REFERENCES model_versioning (id),
    status                 text        NOT NULL DEFAULT 'running'
                           CHECK (status IN ('running', 'concluded', 'aborted')),
    allocation             jsonb       NOT NULL DEFAULT '{"mode": "shadow"}'::jsonb,
    statistic              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    n_observations         integer     NOT NULL DEFAULT 0,
    p_value                double precision,
    verdict                text,
    started_at             timestamptz NOT NULL DEFAULT now(),
    ended_at               timestamptz,
    CHECK (champion_version_id <> challenger_version_id)
);
CREATE INDEX ab_testing_status_idx ON ab_testing_framework (status, family);

-- Live behaviour --------------------------------------------------------------------------

CREATE TABLE model_predictions (
    id                uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version_id  uuid             NOT NULL REFERENCES model_versioning (id),
    role              text             NOT NULL CHECK (role IN ('champion', 'challenger')),
    symbol            text             NOT NULL,
    bar_ts            timestamptz      NOT NULL,
    probability       double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    signal            smallint         NOT NULL CHECK (signal IN (-1, 0, 1)),
    latency_us        double precision,
    predicted_at      timestamptz      NOT NULL DEFAULT now(),
    realized_return   double precision,
    realized_label    smallint,
    realized_at       timestamptz,
    UNIQUE (model_version_id, role, symbol, bar_ts)
);
CREATE INDEX predictions_symbol_ts_idx ON model_predictions (symbol, bar_ts);
CREATE INDEX predictions_unrealized_idx ON model_predictions (bar_ts) WHERE realized_at IS NULL;

CREATE TABLE real_time_model_performance (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version_id  uuid        NOT NULL REFERENCES model_versioning (id),
    window_label      text        NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    n_predictions     integer     NOT NULL CHECK (n_predictions >= 0),
    metrics           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX realtime_perf_model_idx ON real_time_model_performance (model_version_id, window_end);

CREATE TABLE model_drift_detection (
    id                  uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    family              text,
    model_version_id    uuid             REFERENCES model_versioning (id),
    dataset_id          uuid             REFERENCES training_data_management (id),
    reference_window    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    current_window      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    method              text             NOT NULL,
    threshold           double precision NOT NULL,
    dataset_drift_score double precision,
    drift_share         double precision,
    drifted             boolean          NOT NULL,
    feature_scores      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    report_path         text,
    checked_at          timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX drift_checked_idx ON model_drift_detection (checked_at);
CREATE INDEX drift_model_idx ON model_drift_detection (model_version_id);

-- Orchestration mirror, gates, fleet health ---------------------------------------------

CREATE TABLE ml_pipeline_orchestration (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    dagster_run_id  text        NOT NULL UNIQUE,
    job_name        text        NOT NULL,
    partition_key   text,
    status          text        NOT NULL,
    trigger_type    text,
    trigger_id      uuid        REFERENCES automated_retraining_triggers (id),
    priority        integer     NOT NULL DEFAULT 0,
    tags            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orchestration_status_idx ON ml_pipeline_orchestration (status, updated_at);

CREATE TABLE quality_gates (
    id                 uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text             NOT NULL UNIQUE,
    gate_type          text             NOT NULL,
    metric             text             NOT NULL,
    comparator         text             NOT NULL CHECK (comparator IN ('>=', '>', '<=', '<')),
    threshold          double precision NOT NULL,
    champion_tolerance double precision CHECK (champion_tolerance >= 0),
    config             jsonb            NOT NULL DEFAULT '{}'::jsonb,
    enabled            boolean          NOT NULL DEFAULT true,
    created_at         timestamptz      NOT NULL DEFAULT now(),
    updated_at         timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE ml_ops_dashboard (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    snapshot_at  timestamptz NOT NULL DEFAULT now(),
    fleet        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    summary      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX dashboard_snapshot_idx ON ml_ops_dashboard (snapshot_at);

-- Alert rules and the alerts they fire live in one table; a fired alert points at its rule.
CREATE TABLE ml_ops_alerts (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    record_type      text        NOT NULL CHECK (record_type IN ('rule', 'alert')),
    rule_id          uuid        REFERENCES ml_ops_alerts (id),
    name             text        NOT NULL,
    category         text        NOT NULL
                     CHECK (category IN ('performance', 'drift', 'pipeline', 'system')),
    severity         text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    condition        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    message          text,
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled          boolean     NOT NULL DEFAULT true,
    fired_at         timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((record_type = 'rule') = (rule_id IS NULL)),
    CHECK (record_type = 'rule' OR fired_at IS NOT NULL)
);
CREATE UNIQUE INDEX alert_rules_name_idx ON ml_ops_alerts (name) WHERE record_type = 'rule';
CREATE INDEX alerts_open_idx ON ml_ops_alerts (fired_at) WHERE record_type = 'alert'
    AND acknowledged_at IS NULL;

CREATE TABLE ml_ops_reports (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    report_type   text        NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    format        text        NOT NULL CHECK (format IN ('markdown', 'html', 'json')),
    path          text,
    body          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (path IS NOT NULL OR body IS NOT NULL)
);
CREATE INDEX reports_period_idx ON ml_ops_reports (report_type, period_end);

-- The promotion ledger: append-only, so "which model served at time t, and why" always
-- has one answer. The database rejects UPDATE, DELETE and TRUNCATE on it.

CREATE TABLE model_promotion_ledger (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    seq                 bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    family              text        NOT NULL,
    action              text        NOT NULL CHECK (action IN ('promote', 'rollback', 'retire')),
    model_version_id    uuid        NOT NULL REFERENCES model_versioning (id),
    previous_version_id uuid        REFERENCES model_versioning (id),
    actor               text        NOT NULL,
    reason              text        NOT NULL,
    evidence            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dataset_hash        text,
    code_version        text,
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX promotion_ledger_family_time_idx ON model_promotion_ledger (family, recorded_at);
CREATE INDEX promotion_ledger_model_idx ON model_promotion_ledger (model_version_id);

CREATE FUNCTION reject_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model_promotion_ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER model_promotion_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON model_promotion_ledger
    FOR EACH ROW EXECUTE FUNCTION reject_ledger_change();
CREATE TRIGGER model_promotion_ledger_no_truncate
    BEFORE TRUNCATE ON model_promotion_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION reject_ledger_change();

-- Market bars as a TimescaleDB hypertable where the extension can be loaded -------------

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('market_bars', 'ts', if_not_exists => true,
                                  migrate_data => true);
    END IF;
END;
$$;
