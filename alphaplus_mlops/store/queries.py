"""Every SQL statement the project sends, named for what it answers. Parameterized only."""

# Migrations -------------------------------------------------------------------------------

ACQUIRE_ADVISORY_LOCK = "SELECT pg_advisory_lock(%s)"
RELEASE_ADVISORY_LOCK = "SELECT pg_advisory_unlock(%s)"

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SCHEMA_MIGRATIONS_EXISTS = "SELECT to_regclass('public.schema_migrations') IS NOT NULL AS exists"

SELECT_APPLIED_MIGRATIONS = (
    "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
)

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"

# Market bars ------------------------------------------------------------------------------

CREATE_STAGED_BARS = """
CREATE TEMP TABLE staged_bars (
    symbol text, ts timestamptz, open double precision, high double precision,
    low double precision, close double precision, volume double precision, source text
) ON COMMIT DROP
"""

COPY_STAGED_BARS = (
    "COPY staged_bars (symbol, ts, open, high, low, close, volume, source) FROM STDIN"
)

# Only rows whose values differ are rewritten, so loading the same input twice is a no-op;
# xmax = 0 tells a fresh insert from an update of an existing row.
UPSERT_STAGED_BARS = """
INSERT INTO market_bars AS b (symbol, ts, open, high, low, close, volume, source)
SELECT symbol, ts, open, high, low, close, volume, source FROM staged_bars
ON CONFLICT (symbol, ts) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source,
        ingested_at = now()
    WHERE (b.open, b.high, b.low, b.close, b.volume, b.source)
          IS DISTINCT FROM
          (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume,
           EXCLUDED.source)
RETURNING (xmax = 0) AS inserted
"""

BAR_SUMMARY_BY_SYMBOL = """
SELECT symbol, count(*) AS bars, min(ts) AS first_ts, max(ts) AS last_ts,
       string_agg(DISTINCT source, ',') AS sources
FROM market_bars
GROUP BY symbol
ORDER BY symbol
"""

COUNT_BARS = "SELECT count(*) AS n FROM market_bars"

SELECT_BARS_FOR_SYMBOLS = """
SELECT symbol, ts, open, high, low, close, volume
FROM market_bars
WHERE symbol = ANY(%s)
  AND (%s::timestamptz IS NULL OR ts >= %s::timestamptz)
  AND (%s::timestamptz IS NULL OR ts <= %s::timestamptz)
ORDER BY symbol, ts
"""

# Asset hand-offs -----------------------------------------------------------------------------

UPSERT_ASSET_VALUE = """
INSERT INTO dagster_asset_values (asset_key, partition_key, run_id, value)
VALUES (%s, %s, %s, %s)
ON CONFLICT (asset_key, partition_key) DO UPDATE
    SET run_id = EXCLUDED.run_id, value = EXCLUDED.value, written_at = now()
"""

SELECT_ASSET_VALUE = """
SELECT value FROM dagster_asset_values WHERE asset_key = %s AND partition_key = %s
"""

# Datasets -------------------------------------------------------------------------------------

INSERT_DATASET = """
INSERT INTO training_data_management
    (content_hash, symbols, window_start, window_end, n_rows, class_balance, feature_names,
     label_config, artifact_uri, artifact_sha256, feature_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (content_hash) DO NOTHING
RETURNING id
"""

SELECT_DATASET_BY_HASH = "SELECT * FROM training_data_management WHERE content_hash = %s"

SELECT_DATASET = "SELECT * FROM training_data_management WHERE id = %s"

SELECT_ALL_SYMBOLS = "SELECT DISTINCT symbol FROM market_bars ORDER BY symbol"

# Training jobs ---------------------------------------------------------------------------------

INSERT_TRAINING_JOB = """
INSERT INTO model_training_jobs
    (family, trigger_type, trigger_id, priority, status, dagster_run_id, requested_by, reason,
     dataset_id, config, started_at)
VALUES (%s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, now())
RETURNING id
"""

UPDATE_TRAINING_PROGRESS = """
UPDATE model_training_jobs
SET iteration = %s, total_iterations = %s, last_metric_name = %s, last_metric_value = %s,
    peak_rss_bytes = greatest(coalesce(peak_rss_bytes, 0), %s), progress_updated_at = now()
WHERE id = %s
"""

FINISH_TRAINING_JOB = """
UPDATE model_training_jobs
SET status = %s, cpu_seconds = %s, peak_rss_bytes = greatest(coalesce(peak_rss_bytes, 0), %s),
    error = %s, finished_at = now()
WHERE id = %s
"""

SELECT_TRAINING_JOB = "SELECT * FROM model_training_jobs WHERE id = %s"

# Model versions -------------------------------------------------------------------------------

LOCK_FAMILY_VERSIONS = "SELECT pg_advisory_xact_lock(hashtext('model_versioning:' || %s))"

NEXT_MODEL_VERSION = """
SELECT coalesce(max(version), 0) + 1 AS next FROM model_versioning WHERE family = %s
"""

INSERT_MODEL_VERSION = """
INSERT INTO model_versioning
    (family, version, model_name, status, dataset_id, training_job_id, parent_version_id,
     params, feature_names, code_version, native_uri, native_sha256, onnx_uri, onnx_sha256,
     training_path, oof_uri, oof_sha256, train_seconds, notes)
VALUES (%s, %s, %s, 'candidate', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id, version
"""

SELECT_MODEL_VERSION = """
SELECT v.*, d.content_hash AS dataset_hash, d.window_start AS dataset_window_start,
       d.window_end AS dataset_window_end, d.label_config
FROM model_versioning v LEFT JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.id = %s
"""

SELECT_CHAMPION = """
SELECT v.*, d.content_hash AS dataset_hash, d.window_start AS dataset_window_start,
       d.window_end AS dataset_window_end, d.label_config
FROM model_versioning v LEFT JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.family = %s AND v.status = 'champion'
"""

# Evaluation -----------------------------------------------------------------------------------

INSERT_PERFORMANCE = """
INSERT INTO model_performance_tracking
    (model_version_id, dataset_id, split, n_rows, ml_metrics, business_metrics)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING id
"""

SELECT_TRIAL_SHARPES = """
SELECT (p.business_metrics ->> 'sharpe_per_bar')::double precision AS sharpe
FROM model_performance_tracking p JOIN model_versioning v ON v.id = p.model_version_id
WHERE v.family = %s AND p.split = 'walk_forward_oof'
  AND p.business_metrics ? 'sharpe_per_bar'
"""

SELECT_LEADERBOARD = """
SELECT DISTINCT ON (v.family) v.family, v.version, v.status, v.train_seconds,
       (p.ml_metrics ->> 'roc_auc')::double precision AS roc_auc,
       (p.business_metrics ->> 'net_sharpe')::double precision AS net_sharpe,
       (p.business_metrics ->> 'max_drawdown')::double precision AS max_drawdown,
       (p.ml_metrics ->> 'onnx_parity')::double precision AS onnx_parity
FROM model_versioning v
JOIN model_performance_tracking p ON p.model_version_id = v.id AND p.split = 'walk_forward_oof'
ORDER BY v.family, v.version DESC, p.evaluated_at DESC
"""
