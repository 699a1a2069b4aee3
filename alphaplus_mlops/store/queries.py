"""Every SQL statement the project sends, named for what it answers. Parameterized only."""

# Migrations -------------------------------------------------------------------------------

CURRENT_ROLE = "SELECT current_user AS role"

# The runtime role's privileges when a migration role owns the schema; {role} is an
# identifier composed with psycopg.sql. Only a table's owner may alter or drop it or its
# triggers, so the runtime role gets data access to ours; ledger rows can be read and
# appended, nothing else. It keeps CREATE on the schema for Dagster's own storage tables,
# which dagster-postgres creates on first use (they are then the runtime role's).
GRANT_RUNTIME_PRIVILEGES = (
    "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "REVOKE UPDATE, DELETE, TRUNCATE ON model_promotion_ledger FROM {role}",
    "REVOKE UPDATE, DELETE, TRUNCATE ON market_bar_imports, market_bar_revisions FROM {role}",
    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM {role}",
)

ACQUIRE_ADVISORY_LOCK = "SELECT pg_advisory_lock(%s)"
RELEASE_ADVISORY_LOCK = "SELECT pg_advisory_unlock(%s)"

SERVER_VERSION = "SHOW server_version"

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

# Only rows whose values differ are rewritten, so loading the same input twice is a no-op and
# the same values from another source keep the bar's first source; xmax = 0 tells a fresh
# insert from an update of an existing row.
UPSERT_STAGED_BARS = """
INSERT INTO market_bars AS b (symbol, ts, open, high, low, close, volume, source)
SELECT symbol, ts, open, high, low, close, volume, source FROM staged_bars
ON CONFLICT (symbol, ts) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source,
        ingested_at = now()
    WHERE (b.open, b.high, b.low, b.close, b.volume)
          IS DISTINCT FROM
          (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
RETURNING (xmax = 0) AS inserted
"""

# Bar imports and restatements (migration 008) ----------------------------------------------

# One import at a time, so the bars classified as new, restated or unchanged are still so
# when the upsert runs.
LOCK_BAR_IMPORTS = "SELECT pg_advisory_xact_lock(hashtext('market_bars:import'))"

# Imports wait for each other (a large file may take minutes), longer than the session's
# lock_timeout allows for a hung lock holder.
EXTEND_LOCK_TIMEOUT_FOR_IMPORT = "SET LOCAL lock_timeout = '300s'"

# Staged bars whose stored bar has other values, with both versions.
SELECT_STAGED_BAR_RESTATEMENTS = """
SELECT s.symbol, s.ts,
       b.open AS old_open, b.high AS old_high, b.low AS old_low, b.close AS old_close,
       b.volume AS old_volume, b.source AS old_source,
       s.open AS new_open, s.high AS new_high, s.low AS new_low, s.close AS new_close,
       s.volume AS new_volume
FROM staged_bars s
JOIN market_bars b ON b.symbol = s.symbol AND b.ts = s.ts
WHERE (b.open, b.high, b.low, b.close, b.volume)
      IS DISTINCT FROM (s.open, s.high, s.low, s.close, s.volume)
ORDER BY s.symbol, s.ts
"""

# The stored bars that give staged ones their context: per symbol, the %(n)s before and after
# the staged span and every one inside it that the input does not restate.
SELECT_STORED_BARS_AROUND_STAGED = """
WITH spans AS (
    SELECT symbol, min(ts) AS first_ts, max(ts) AS last_ts FROM staged_bars GROUP BY symbol
)
SELECT b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume
FROM spans s
CROSS JOIN LATERAL (
    (SELECT symbol, ts, open, high, low, close, volume FROM market_bars
     WHERE symbol = s.symbol AND ts < s.first_ts ORDER BY ts DESC LIMIT %(n)s)
    UNION ALL
    (SELECT symbol, ts, open, high, low, close, volume FROM market_bars
     WHERE symbol = s.symbol AND ts > s.last_ts ORDER BY ts LIMIT %(n)s)
    UNION ALL
    (SELECT m.symbol, m.ts, m.open, m.high, m.low, m.close, m.volume FROM market_bars m
     WHERE m.symbol = s.symbol AND m.ts BETWEEN s.first_ts AND s.last_ts
       AND NOT EXISTS (SELECT 1 FROM staged_bars x WHERE x.symbol = m.symbol AND x.ts = m.ts))
) b
ORDER BY b.symbol, b.ts
"""

COUNT_STAGED_BARS_NEW = """
SELECT count(*) AS n FROM staged_bars s
WHERE NOT EXISTS (SELECT 1 FROM market_bars b WHERE b.symbol = s.symbol AND b.ts = s.ts)
"""

INSERT_BAR_IMPORT = """
INSERT INTO market_bar_imports (source, source_sha256, received, inserted, restated, unchanged)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING id
"""

# Runs before the upsert, while market_bars still holds the old values.
INSERT_BAR_REVISIONS_FROM_STAGED = """
INSERT INTO market_bar_revisions
    (import_id, symbol, ts, old_open, old_high, old_low, old_close, old_volume, old_source,
     old_ingested_at, new_open, new_high, new_low, new_close, new_volume, new_source)
SELECT %s, s.symbol, s.ts, b.open, b.high, b.low, b.close, b.volume, b.source, b.ingested_at,
       s.open, s.high, s.low, s.close, s.volume, s.source
FROM staged_bars s
JOIN market_bars b ON b.symbol = s.symbol AND b.ts = s.ts
WHERE (b.open, b.high, b.low, b.close, b.volume)
      IS DISTINCT FROM (s.open, s.high, s.low, s.close, s.volume)
"""

SELECT_BAR_REVISIONS = """
SELECT r.symbol, r.ts, r.old_open, r.old_high, r.old_low, r.old_close, r.old_volume,
       r.old_source, r.old_ingested_at, r.new_open, r.new_high, r.new_low, r.new_close,
       r.new_volume, r.new_source, r.revised_at, r.import_id, i.source_sha256
FROM market_bar_revisions r
JOIN market_bar_imports i ON i.id = r.import_id
WHERE r.symbol = ANY(%s)
ORDER BY r.symbol, r.ts, r.id
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
ON CONFLICT (asset_key, partition_key, run_id) DO UPDATE
    SET value = EXCLUDED.value, written_at = clock_timestamp()
"""

# This run's own value when it wrote one, else the latest from any run.
SELECT_ASSET_VALUE = """
SELECT value FROM dagster_asset_values WHERE asset_key = %s AND partition_key = %s
ORDER BY (run_id = %s) DESC, written_at DESC
LIMIT 1
"""

# Datasets -------------------------------------------------------------------------------------

INSERT_DATASET = """
INSERT INTO training_data_management
    (content_hash, symbols, window_start, window_end, n_rows, class_balance, feature_names,
     label_config, artifact_uri, artifact_sha256, feature_version, labels_shuffled)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (content_hash) DO NOTHING
RETURNING id
"""

SELECT_DATASET_BY_HASH = "SELECT * FROM training_data_management WHERE content_hash = %s"
SELECT_DATASET_BY_ID = "SELECT * FROM training_data_management WHERE id = %s"

SELECT_ALL_SYMBOLS = "SELECT DISTINCT symbol FROM market_bars ORDER BY symbol"

# Per symbol, its last bar and how many bar times the market has had since (capped): the
# symbols walked on the primary key, each one's last bar a probe of it, the count a range of
# market_bars_ts_idx (short unless the symbol is far behind, where the cap stops it).
SELECT_SYMBOL_FRESHNESS = """
WITH RECURSIVE symbols AS (
    (SELECT symbol FROM market_bars ORDER BY symbol LIMIT 1)
    UNION ALL
    SELECT (SELECT b.symbol FROM market_bars b WHERE b.symbol > s.symbol
            ORDER BY b.symbol LIMIT 1)
    FROM symbols s WHERE s.symbol IS NOT NULL
), last AS (
    SELECT s.symbol,
           (SELECT max(b.ts) FROM market_bars b WHERE b.symbol = s.symbol) AS last_ts
    FROM symbols s WHERE s.symbol IS NOT NULL
)
SELECT l.symbol, l.last_ts,
       (SELECT count(*) FROM (SELECT DISTINCT m.ts FROM market_bars m WHERE m.ts > l.last_ts
                              LIMIT %s) later) AS bars_behind
FROM last l
ORDER BY l.symbol
"""

# What identifies a symbol's stored bars for a cache of features computed from them: a new or
# deleted bar changes the count (and a new last bar the last time); a restatement through the
# store leaves a revision row, whose id is taken under the import lock, so a later restatement
# always has a larger id; a bar changed by hand in SQL moves the latest ingested_at.
SELECT_BAR_FINGERPRINTS = """
SELECT s.symbol, b.bars, b.last_ts, b.last_ingested,
       (SELECT max(r.id) FROM market_bar_revisions r WHERE r.symbol = s.symbol) AS last_revision
FROM unnest(%s::text[]) AS s(symbol)
CROSS JOIN LATERAL (
    SELECT count(*) AS bars, max(ts) AS last_ts, max(ingested_at) AS last_ingested
    FROM market_bars WHERE symbol = s.symbol
) AS b
WHERE b.bars > 0
"""

# Training jobs ---------------------------------------------------------------------------------

INSERT_TRAINING_JOB = """
INSERT INTO model_training_jobs
    (family, trigger_type, trigger_id, priority, status, dagster_run_id, requested_by, reason,
     dataset_id, config, started_at, heartbeat_at, worker_host, worker_pid)
VALUES (%s, %s, (SELECT id FROM automated_retraining_triggers WHERE id = %s::uuid), %s,
        'running', %s, %s, %s, %s, %s, now(), now(), %s, %s)
RETURNING id
"""

UPDATE_TRAINING_PROGRESS = """
UPDATE model_training_jobs
SET iteration = %s, total_iterations = %s, last_metric_name = %s, last_metric_value = %s,
    peak_rss_bytes = greatest(coalesce(peak_rss_bytes, 0), %s), progress_updated_at = now(),
    heartbeat_at = now()
WHERE id = %s
"""

TRAINING_HEARTBEAT = """
UPDATE model_training_jobs SET heartbeat_at = now() WHERE id = %s AND status = 'running'
"""

FINISH_TRAINING_JOB = """
UPDATE model_training_jobs
SET status = %s, cpu_seconds = %s, peak_rss_bytes = greatest(coalesce(peak_rss_bytes, 0), %s),
    error = %s, finished_at = now()
WHERE id = %s AND status = 'running'
RETURNING id
"""

# When a family last trained, whatever became of it: the model-age schedule counts from it.
SELECT_LAST_TRAINING_OF_FAMILY = """
SELECT max(created_at) AS last FROM model_training_jobs WHERE family = %s
"""

# Running rows the reaper looks at: each with its seconds since the last sign of life.
SELECT_RUNNING_TRAINING_JOBS = """
SELECT id, family, dagster_run_id, started_at, heartbeat_at, worker_host, worker_pid,
       extract(epoch FROM now() - coalesce(heartbeat_at, started_at, created_at)) AS silent_seconds
FROM model_training_jobs
WHERE status = 'running'
ORDER BY created_at
"""

# Closes a row the reaper judged dead; a row its worker closed meanwhile is left alone.
REAP_TRAINING_JOB = """
UPDATE model_training_jobs SET status = 'failed', error = %s, finished_at = now()
WHERE id = %s AND status = 'running'
RETURNING id
"""

# Model versions -------------------------------------------------------------------------------

LOCK_FAMILY_VERSIONS = "SELECT pg_advisory_xact_lock(hashtext('model_versioning:' || %s))"

SHOW_LOCK_TIMEOUT = "SELECT current_setting('lock_timeout') AS lock_timeout"

# The decision clock (sql/023_market_clock.sql): whether this database runs on the market's.
SELECT_CLOCK = """
SELECT coalesce(current_setting('alphaplus.clock', true) = 'market', false) AS market,
       clock_now() AS now
"""

SELECT_CURRENT_DATABASE = "SELECT current_database() AS name"

# Consistency (the reaper and `doctor`) ------------------------------------------------------

# `promote` decisions whose promotion never happened (a crash between the two transactions,
# or a promotion refused after the decision), older than %s seconds and not yet reconciled.
SELECT_UNFINISHED_PROMOTIONS = """
SELECT d.id, d.family, d.model_version_id, d.inputs, d.decided_at, v.version, v.status
FROM automated_decision_making d
JOIN model_versioning v ON v.id = d.model_version_id
WHERE d.decision_type = 'deployment' AND d.outcome = 'promote'
  AND d.decided_at < clock_now() - make_interval(secs => %s)
  AND NOT EXISTS (SELECT 1 FROM model_promotion_ledger l
                  WHERE l.model_version_id = d.model_version_id AND l.action = 'promote')
  AND NOT EXISTS (SELECT 1 FROM automated_decision_making r
                  WHERE r.decision_type = 'reconciliation'
                    AND r.inputs ->> 'decision_id' = d.id::text)
ORDER BY d.decided_at
"""

# The same decision, if it is still waiting for its promotion (any age).
SELECT_UNFINISHED_PROMOTION = """
SELECT d.id FROM automated_decision_making d
WHERE d.id = %s
  AND NOT EXISTS (SELECT 1 FROM model_promotion_ledger l
                  WHERE l.model_version_id = d.model_version_id AND l.action = 'promote')
  AND NOT EXISTS (SELECT 1 FROM automated_decision_making r
                  WHERE r.decision_type = 'reconciliation'
                    AND r.inputs ->> 'decision_id' = d.id::text)
"""

# Per family, the champion by status against the one the latest ledger row installed
# (none after a 'retire'); only the families where they differ.
SELECT_CHAMPION_LEDGER_MISMATCH = """
WITH latest AS (
    SELECT DISTINCT ON (family) family, seq,
           CASE WHEN action = 'retire' THEN NULL ELSE model_version_id END AS version_id
    FROM model_promotion_ledger
    ORDER BY family, seq DESC
), champions AS (
    SELECT family, id FROM model_versioning WHERE status = 'champion'
)
SELECT coalesce(l.family, c.family) AS family, l.seq AS ledger_seq,
       l.version_id AS ledger_version_id, lv.version AS ledger_version,
       c.id AS champion_version_id, cv.version AS champion_version
FROM latest l
FULL JOIN champions c ON c.family = l.family
LEFT JOIN model_versioning lv ON lv.id = l.version_id
LEFT JOIN model_versioning cv ON cv.id = c.id
WHERE l.version_id IS DISTINCT FROM c.id
ORDER BY 1
"""

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

# A version with what its dataset says about it; every query for a version starts here.
_VERSION_WITH_DATASET = """
SELECT v.*, d.content_hash AS dataset_hash, d.window_start AS dataset_window_start,
       d.window_end AS dataset_window_end, d.label_config,
       d.feature_version AS dataset_feature_version
FROM model_versioning v LEFT JOIN training_data_management d ON d.id = v.dataset_id
"""

SELECT_MODEL_VERSION = _VERSION_WITH_DATASET + "WHERE v.id = %s"

SELECT_CHAMPION = _VERSION_WITH_DATASET + "WHERE v.family = %s AND v.status = 'champion'"

SELECT_VERSION_BY_NUMBER = _VERSION_WITH_DATASET + "WHERE v.family = %s AND v.version = %s"

# NO KEY UPDATE: promotions still wait for each other, but not for the prediction log, whose
# rows reference the versions (a foreign key check takes KEY SHARE, which FOR UPDATE blocks:
# a promotion and a log write each holding one version and wanting the other deadlocked).
SELECT_VERSION_FOR_UPDATE = _VERSION_WITH_DATASET + "WHERE v.id = %s FOR NO KEY UPDATE OF v"

# Evaluation -----------------------------------------------------------------------------------

INSERT_PERFORMANCE = """
INSERT INTO model_performance_tracking
    (model_version_id, dataset_id, split, n_rows, ml_metrics, business_metrics, returns_uri,
     returns_sha256)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""

# One trial per version ever evaluated out of fold on the same label definition, of any
# family or configuration (its latest evaluation), newest first; never a sabotage drill, and
# never the version being evaluated now: re-evaluating it must not count it twice.
SELECT_TRIALS = """
SELECT * FROM (
    SELECT DISTINCT ON (p.model_version_id)
           p.model_version_id, p.evaluated_at, p.returns_uri, p.returns_sha256,
           (p.business_metrics ->> 'sharpe_per_bar')::double precision AS sharpe
    FROM model_performance_tracking p
    JOIN model_versioning v ON v.id = p.model_version_id
    JOIN training_data_management d ON d.id = v.dataset_id
    WHERE p.split = 'walk_forward_oof' AND p.model_version_id <> %s
      AND d.label_config = %s AND NOT d.labels_shuffled
      AND p.business_metrics ? 'sharpe_per_bar'
    ORDER BY p.model_version_id, p.evaluated_at DESC
) latest
ORDER BY evaluated_at DESC
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

# Quality gates ---------------------------------------------------------------------------------

SELECT_ENABLED_GATES = "SELECT * FROM quality_gates WHERE enabled ORDER BY name"

# A replay's database takes the gates and triggers as another database configures them.
SELECT_GATE_SETTINGS = """
SELECT name, metric, comparator, threshold, champion_tolerance, config, enabled
FROM quality_gates ORDER BY name
"""
COPY_GATE_SETTINGS = """
UPDATE quality_gates SET metric = %(metric)s, comparator = %(comparator)s,
    threshold = %(threshold)s, champion_tolerance = %(champion_tolerance)s,
    config = %(config)s, enabled = %(enabled)s, updated_at = now()
WHERE name = %(name)s
"""
SELECT_TRIGGER_SETTINGS = """
SELECT name, trigger_type, config, cooldown_seconds, priority, enabled
FROM automated_retraining_triggers ORDER BY name
"""
COPY_TRIGGER_SETTINGS = """
UPDATE automated_retraining_triggers SET config = %(config)s,
    cooldown_seconds = %(cooldown_seconds)s, priority = %(priority)s, enabled = %(enabled)s,
    updated_at = now()
WHERE name = %(name)s
"""

INSERT_GATE_RESULT = """
INSERT INTO quality_gate_results
    (model_version_id, dataset_id, gate_id, gate_name, passed, measured, thresholds, reason,
     severity, dagster_run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# The latest judgement per enabled gate for one version (data quality: for its dataset);
# a gate never run for it has passed = NULL, which is not a pass. The champion_comparison
# row configures the deployment decision, live_experiment and auto_rollback the live rules;
# they are not pass/fail gates.
SELECT_GATE_STATUS = """
SELECT g.name AS gate_name, r.passed, r.reason, r.checked_at, r.measured
FROM quality_gates g
CROSS JOIN (SELECT id, dataset_id FROM model_versioning WHERE id = %s) v
LEFT JOIN LATERAL (
    SELECT passed, reason, checked_at, measured FROM quality_gate_results q
    WHERE q.gate_name = g.name
      AND (q.model_version_id = v.id
           OR (q.model_version_id IS NULL AND q.dataset_id = v.dataset_id))
    ORDER BY checked_at DESC LIMIT 1
) r ON true
WHERE g.enabled
  AND g.gate_type NOT IN ('champion_comparison', 'live_experiment', 'auto_rollback')
ORDER BY g.name
"""

SELECT_VERSION_TRAINED_IN_RUN = """
SELECT v.* FROM model_versioning v JOIN model_training_jobs j ON j.id = v.training_job_id
WHERE j.dagster_run_id = %s
"""

SELECT_CHAMPION_FOR_UPDATE = """
SELECT * FROM model_versioning WHERE family = %s AND status = 'champion' FOR NO KEY UPDATE
"""

SET_VERSION_STATUS = """
UPDATE model_versioning SET status = %s, status_changed_at = clock_now() WHERE id = %s
"""

SET_STATUS_IF_CANDIDATE = """
UPDATE model_versioning SET status = %s, status_changed_at = clock_now()
WHERE id = %s AND status = 'candidate'
RETURNING id
"""

# Decisions, deployment, ledger --------------------------------------------------------------

INSERT_DECISION = """
INSERT INTO automated_decision_making
    (decision_type, family, model_version_id, rule, inputs, outcome, reasons, decided_by)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""

INSERT_DEPLOYMENT_STAGE = """
INSERT INTO model_deployment_pipeline (model_version_id, family, stage, decision_id, details)
VALUES (%s, %s, %s, %s, %s)
"""

INSERT_LEDGER = """
INSERT INTO model_promotion_ledger
    (family, action, model_version_id, previous_version_id, actor, reason, evidence,
     dataset_hash, code_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id, seq, recorded_at
"""

SELECT_LEDGER_FOR_FAMILY = """
SELECT l.*, v.version, v.status AS version_status FROM model_promotion_ledger l
JOIN model_versioning v ON v.id = l.model_version_id
WHERE l.family = %s ORDER BY l.seq DESC
"""

SELECT_SERVING_AT = """
SELECT l.*, v.version FROM model_promotion_ledger l
JOIN model_versioning v ON v.id = l.model_version_id
WHERE l.family = %s AND l.recorded_at <= %s AND l.action IN ('promote', 'rollback')
ORDER BY l.seq DESC LIMIT 1
"""

# Serving: what should answer, per family and role (serving/service.py) ----------------------
# champion by status; the latest challenger; the champion the family's latest promotion or
# rollback replaced, while that ledger row is younger than the probation window (seconds)
# or, after a promotion, while probation_review's latest look at it keeps the probation
# open (it started within the window and has not passed or rolled back yet).
_SERVED_COLUMNS = """v.id, v.family, v.version, v.status, v.feature_names, v.onnx_uri,
       v.onnx_sha256, v.native_uri, v.native_sha256,
       (SELECT d.feature_version FROM training_data_management d WHERE d.id = v.dataset_id)
           AS feature_version"""

SELECT_SERVING_DESIRED = f"""
SELECT 'champion' AS role, NULL::timestamptz AS since, {_SERVED_COLUMNS}
FROM model_versioning v WHERE v.status = 'champion'
UNION ALL
(SELECT DISTINCT ON (v.family) 'challenger', NULL::timestamptz, {_SERVED_COLUMNS}
 FROM model_versioning v WHERE v.status = 'challenger'
 ORDER BY v.family, v.version DESC)
UNION ALL
SELECT 'previous', latest.recorded_at, {_SERVED_COLUMNS}
FROM (SELECT DISTINCT ON (l.family) l.family, l.previous_version_id, l.recorded_at,
             l.action, l.seq
      FROM model_promotion_ledger l WHERE l.action IN ('promote', 'rollback')
      ORDER BY l.family, l.seq DESC) latest
JOIN model_versioning v ON v.id = latest.previous_version_id
WHERE v.status <> 'champion'
  AND (latest.recorded_at > clock_now() - make_interval(secs => %s)
       OR (latest.action = 'promote'
           AND (SELECT d.outcome FROM automated_decision_making d
                WHERE d.decision_type = 'probation' AND d.family = latest.family
                  AND d.inputs->>'ledger_seq' = latest.seq::text
                ORDER BY d.decided_at DESC LIMIT 1) IN ('continue', 'rollback_refused')))
"""

SELECT_CHAMPION_SINCE = """
SELECT v.id, v.version, v.created_at,
       (SELECT max(recorded_at) FROM model_promotion_ledger l
        WHERE l.model_version_id = v.id AND l.action IN ('promote', 'rollback')) AS since
FROM model_versioning v WHERE v.family = %s AND v.status = 'champion'
"""

SELECT_TRIGGERS_OF_TYPE = """
SELECT * FROM automated_retraining_triggers WHERE trigger_type = %s AND enabled ORDER BY name
"""

# A trigger's decisions (requested or refused) are automated_decision_making rows of type
# 'retrain_trigger', rule = the trigger's name, inputs->>'trigger_id' and ->>'evidence'.
SELECT_TRIGGER_DECISION_FOR_EVIDENCE = """
SELECT id, outcome FROM automated_decision_making
WHERE decision_type = 'retrain_trigger' AND inputs->>'trigger_id' = %s
  AND inputs->>'evidence' = %s
LIMIT 1
"""

SELECT_LAST_TRIGGER_DECISION_ON_VERSION = """
SELECT id, outcome, inputs, decided_at FROM automated_decision_making
WHERE decision_type = 'retrain_trigger' AND inputs->>'trigger_id' = %s
  AND model_version_id = %s
ORDER BY decided_at DESC LIMIT 1
"""

SELECT_TRIGGER_REQUESTS_SINCE = """
SELECT decided_at FROM automated_decision_making
WHERE decision_type = 'retrain_trigger' AND family = %s AND outcome = 'requested'
  AND inputs->>'trigger_id' = %s AND decided_at > %s
ORDER BY decided_at DESC
"""

MARK_TRIGGER_FIRED = """
UPDATE automated_retraining_triggers SET last_fired_at = clock_now(), updated_at = now()
WHERE id = %s
"""

# Status --------------------------------------------------------------------------------------

SELECT_FAMILY_STATUS = """
SELECT
  (SELECT row_to_json(c) FROM (SELECT id, version, created_at FROM model_versioning
     WHERE family = %(f)s AND status = 'champion') c) AS champion,
  (SELECT row_to_json(c) FROM (SELECT id, version, created_at FROM model_versioning
     WHERE family = %(f)s AND status = 'challenger' ORDER BY version DESC LIMIT 1) c)
     AS challenger,
  (SELECT row_to_json(j) FROM (SELECT status, trigger_type, reason, created_at, finished_at
     FROM model_training_jobs WHERE family = %(f)s ORDER BY created_at DESC LIMIT 1) j)
     AS last_training,
  (SELECT row_to_json(d) FROM (SELECT d.outcome, d.reasons, d.decided_at, v.version
     FROM automated_decision_making d JOIN model_versioning v ON v.id = d.model_version_id
     WHERE d.family = %(f)s AND d.decision_type = 'deployment'
     ORDER BY d.decided_at DESC LIMIT 1) d) AS last_decision
"""

# Orchestration mirror ------------------------------------------------------------------------

UPSERT_RUN_MIRROR = """
INSERT INTO ml_pipeline_orchestration
    (dagster_run_id, job_name, partition_key, status, trigger_type, trigger_id, priority, tags,
     started_at, finished_at)
VALUES (%s, %s, %s, %s, %s,
        (SELECT id FROM automated_retraining_triggers WHERE id = %s::uuid), %s, %s, %s, %s)
ON CONFLICT (dagster_run_id) DO UPDATE
    SET status = EXCLUDED.status, started_at = coalesce(EXCLUDED.started_at,
        ml_pipeline_orchestration.started_at), finished_at = EXCLUDED.finished_at,
        tags = EXCLUDED.tags, updated_at = now()
"""

SELECT_SHARED_EVALUATION = """
SELECT DISTINCT ON (model_version_id) model_version_id, ml_metrics, business_metrics, n_rows
FROM model_performance_tracking
WHERE split = %s AND model_version_id IN (%s, %s)
ORDER BY model_version_id, evaluated_at DESC
"""

SELECT_OOF_EVALUATION = """
SELECT ml_metrics, business_metrics, n_rows FROM model_performance_tracking
WHERE model_version_id = %s AND split = 'walk_forward_oof'
ORDER BY evaluated_at DESC LIMIT 1
"""

SELECT_RECENT_BARS = """
SELECT symbol, ts, open, high, low, close, volume FROM (
    SELECT b.*, row_number() OVER (PARTITION BY symbol ORDER BY ts DESC) AS age
    FROM market_bars b WHERE symbol = ANY(%s)
) recent
WHERE age <= %s
ORDER BY symbol, ts
"""

# Alerts and artifact integrity ----------------------------------------------------------------

SELECT_ALERT_RULE = """
SELECT id, name, category, severity, enabled, condition FROM ml_ops_alerts
WHERE record_type = 'rule' AND name = %s
"""

# Two workers that find the same problem at once raise one alert, not two (the unique index
# on unresolved (rule, subject) would refuse the second; the lock makes it wait instead).
LOCK_ALERT_KEY = "SELECT pg_advisory_xact_lock(hashtext('ml_ops_alerts:' || %s))"

SELECT_UNRESOLVED_ALERT = """
SELECT id, state, occurrences FROM ml_ops_alerts
WHERE record_type = 'alert' AND rule_id = %s AND subject = %s AND state <> 'resolved'
"""

REPEAT_ALERT = """
UPDATE ml_ops_alerts
SET last_seen_at = now(), occurrences = occurrences + 1, message = %s, details = %s
WHERE id = %s
RETURNING id, state, occurrences
"""

INSERT_ALERT = """
INSERT INTO ml_ops_alerts
    (record_type, rule_id, name, category, severity, message, details, subject, state,
     fired_at, last_seen_at, occurrences)
VALUES ('alert', %s, %s, %s, %s, %s, %s, %s, 'open', now(), now(), 1)
RETURNING id, state, occurrences
"""

RESOLVE_ALERT = """
UPDATE ml_ops_alerts a
SET state = 'resolved', resolved_at = now(), resolution = %(resolution)s
FROM ml_ops_alerts r
WHERE a.record_type = 'alert' AND a.rule_id = r.id AND r.record_type = 'rule'
  AND r.name = %(rule)s AND a.state <> 'resolved'
  AND (a.subject = %(subject)s
       OR (%(subject)s::text IS NULL AND NOT a.subject = ANY(%(still_firing)s::text[])
           AND (%(prefix)s::text IS NULL OR starts_with(a.subject, %(prefix)s))))
RETURNING a.id, a.severity
"""

SELECT_ALERTS = """
SELECT id, name AS rule, category, severity, subject, state, message, details,
       fired_at AS first_seen_at, last_seen_at, occurrences, acknowledged_at,
       acknowledged_by, resolved_at, resolution
FROM ml_ops_alerts
WHERE record_type = 'alert'
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(rule)s::text IS NULL OR name = %(rule)s)
ORDER BY fired_at, id
LIMIT %(limit)s
"""

ACKNOWLEDGE_ALERT = """
UPDATE ml_ops_alerts SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s
WHERE id = %s AND record_type = 'alert' AND state = 'open'
RETURNING id
"""

SELECT_ALERT_STATE = """
SELECT state FROM ml_ops_alerts WHERE id = %s AND record_type = 'alert'
"""

# Deliveries: an outbox beside each alert, drained by the delivery sensor ------------------

SELECT_ALERT_CHANNELS = """
SELECT id, name, kind, config FROM alert_channels WHERE enabled ORDER BY name
"""

INSERT_ALERT_DELIVERY = """
INSERT INTO alert_deliveries (alert_id, channel_id, event, status, attempts, delivered_at)
VALUES (%s, %s, %s, %s, %s, CASE WHEN %s = 'delivered' THEN now() END)
ON CONFLICT (alert_id, channel_id, event) DO NOTHING
"""

# One due delivery, leased for its attempt: pushed past the attempt's time so a concurrent
# drainer skips it, and if this one dies mid-attempt it is tried again after the lease.
CLAIM_ALERT_DELIVERY = """
UPDATE alert_deliveries d
SET next_attempt_at = now() + make_interval(secs => %s), attempts = d.attempts + 1
FROM (
    SELECT id FROM alert_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) due, alert_channels c, ml_ops_alerts a
WHERE d.id = due.id AND c.id = d.channel_id AND a.id = d.alert_id
RETURNING d.id, d.event, d.attempts, c.name AS channel, c.kind, c.config,
          a.id AS alert_id, a.name AS rule, a.category, a.severity, a.subject, a.state,
          a.message, a.details, a.fired_at AS first_seen_at, a.last_seen_at, a.occurrences,
          a.resolved_at, a.resolution
"""

DELIVERED_ALERT = """
UPDATE alert_deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL
WHERE id = %s
"""

# Failed: tried again after backoff_seconds * 2^(attempts-1), or given up after max_attempts.
FAILED_ALERT_DELIVERY = """
UPDATE alert_deliveries
SET last_error = %(error)s,
    status = CASE WHEN attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => %(backoff)s * 2 ^ (attempts - 1))
WHERE id = %(id)s
RETURNING status, attempts, next_attempt_at
"""

SELECT_ALERT_DELIVERIES = """
SELECT d.id, d.alert_id, c.name AS channel, c.kind, d.event, d.status, d.attempts,
       d.last_error, d.next_attempt_at, d.delivered_at
FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id
WHERE (%(alert)s::uuid IS NULL OR d.alert_id = %(alert)s)
ORDER BY d.created_at, d.id
"""

# Every artifact the database records, with what it belongs to; champions first, as their
# loss matters most. Rows that recorded no file (older evaluations) are left out.
SELECT_RECORDED_ARTIFACTS = """
SELECT * FROM (
    SELECT 'model_versioning' AS record_table, v.id::text AS record_id, a.kind, v.family,
           v.version, v.status AS role, a.uri, a.sha256
    FROM model_versioning v
    CROSS JOIN LATERAL (VALUES ('native', v.native_uri, v.native_sha256),
                               ('onnx', v.onnx_uri, v.onnx_sha256),
                               ('oof', v.oof_uri, v.oof_sha256)) AS a (kind, uri, sha256)
    UNION ALL
    SELECT 'training_data_management', d.id::text, 'dataset', NULL, NULL, NULL,
           d.artifact_uri, d.artifact_sha256
    FROM training_data_management d
    UNION ALL
    SELECT 'model_performance_tracking', p.id::text, 'returns', v.family, v.version, v.status,
           p.returns_uri, p.returns_sha256
    FROM model_performance_tracking p JOIN model_versioning v ON v.id = p.model_version_id
) recorded
WHERE uri IS NOT NULL
ORDER BY coalesce(role = 'champion', false) DESC, record_table, family, version, record_id, kind
"""

# Live signals (defs/assets/live.py) ------------------------------------------------------------

# Where a family's scoring left off, per symbol: one walk down predictions_symbol_ts_idx from
# the symbol's newest bar, not a scan of the family's log.
SELECT_LAST_SCORED_BARS = """
SELECT s.symbol,
       (SELECT max(p.bar_ts) FROM model_predictions p
        WHERE p.symbol = s.symbol AND p.family = %s AND p.role = 'champion') AS last_ts
FROM unnest(%s::text[]) AS s(symbol)
"""

SELECT_VERSION_DATASET_SYMBOLS = """
SELECT d.symbols FROM model_versioning v
JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.id = %s
"""

# The newest import that added bars: the live_signals sensor's cursor.
SELECT_LATEST_BAR_ARRIVAL = """
SELECT max(imported_at) AS at FROM market_bar_imports WHERE inserted > 0
"""

# Prediction log (migration 012) ----------------------------------------------------------------

# The month partitions of model_predictions (migration 025) from the month of the first
# bar to that of the second, created where missing (a month must exist before its first
# row); how many were created. Cheap when they exist: one catalog lookup per month.
ENSURE_PREDICTION_PARTITIONS = "SELECT ensure_prediction_partitions(%s, %s) AS created"

CREATE_STAGED_PREDICTIONS = """
CREATE TEMP TABLE staged_predictions (
    id uuid, model_version_id uuid, family text, role text, symbol text, bar_ts timestamptz,
    probability double precision, signal smallint, latency_us double precision,
    request_id text, predicted_at timestamptz
) ON COMMIT DROP
"""

COPY_STAGED_PREDICTIONS = (
    "COPY staged_predictions (id, model_version_id, family, role, symbol, bar_ts, probability,"
    " signal, latency_us, request_id, predicted_at) FROM STDIN"
)

# The id is the service's own: a batch written again (a replay after a lost commit answer)
# adds nothing. DISTINCT ON: a batch holding the same id twice still inserts it once. The
# key holds the partition key (migration 025); a replayed row carries its first bar.
INSERT_STAGED_PREDICTIONS = """
INSERT INTO model_predictions
    (id, model_version_id, family, role, symbol, bar_ts, probability, signal, latency_us,
     request_id, predicted_at)
SELECT DISTINCT ON (id) id, model_version_id, family, role, symbol, bar_ts, probability,
       signal, latency_us, request_id, predicted_at
FROM staged_predictions
ON CONFLICT (id, bar_ts) DO NOTHING
"""

PING = "SELECT 1"

# Live outcomes and live performance -------------------------------------------------------

# Every prediction of a series (version, role, symbol) that has an unrealized one, from the
# last prediction before its first unrealized bar on: that earlier position decides what
# the first unrealized bar pays to change it. One row per bar (the first answer), as the
# paper P&L counts one position per bar.
# The unrealized answers are one range of predictions_pending_answers_idx (migration 017),
# read in order from the index alone. The bars before are realized, so their first answers
# are in live_outcomes: read per (version, role) from the earliest bar any of its series
# needs, then kept from each series' own start. Sorted by the uuid, not its text, and by
# bytes ("C"), not the database's collation: a sort by collation is several times slower.
SELECT_PENDING_SERIES = """
WITH pending AS (
    SELECT DISTINCT ON (model_version_id, role, symbol, bar_ts)
           model_version_id, role, symbol, bar_ts, signal, predicted_at
    FROM model_predictions
    WHERE family = %(family)s AND realized_at IS NULL
    ORDER BY model_version_id, role, symbol, bar_ts, predicted_at
), since AS (
    SELECT s.model_version_id, s.role, s.symbol,
           coalesce((SELECT max(q.bar_ts) FROM model_predictions q
                     WHERE q.model_version_id = s.model_version_id AND q.role = s.role
                       AND q.symbol = s.symbol AND q.bar_ts < s.first_ts),
                    s.first_ts) AS from_ts
    FROM (SELECT model_version_id, role, symbol, min(bar_ts) AS first_ts
          FROM pending GROUP BY model_version_id, role, symbol) s
), realized AS (
    SELECT o.model_version_id, o.role, o.symbol, o.bar_ts, o.signal, o.predicted_at
    FROM (SELECT model_version_id, role, min(from_ts) AS from_ts
          FROM since GROUP BY model_version_id, role) g
    CROSS JOIN LATERAL (
        SELECT o.model_version_id, o.role, o.symbol, o.bar_ts, o.signal, o.predicted_at
        FROM live_outcomes o
        WHERE o.model_version_id = g.model_version_id AND o.role = g.role
          AND o.bar_ts >= g.from_ts) o
    JOIN since s ON s.model_version_id = o.model_version_id AND s.role = o.role
                AND s.symbol = o.symbol AND o.bar_ts >= s.from_ts
)
SELECT DISTINCT ON (answers.model_version_id, role COLLATE "C", symbol COLLATE "C", bar_ts)
       model_version_id::text AS model_version_id, role, symbol, bar_ts, signal
FROM (SELECT * FROM pending UNION ALL SELECT * FROM realized) answers
ORDER BY answers.model_version_id, role COLLATE "C", symbol COLLATE "C", bar_ts, predicted_at
"""

SELECT_LABEL_CONFIGS = """
SELECT v.id::text AS model_version_id, d.label_config
FROM model_versioning v JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.id = ANY(%s::uuid[])
"""

CREATE_STAGED_OUTCOMES = """
CREATE TEMP TABLE staged_outcomes (
    model_version_id uuid, role text, symbol text, bar_ts timestamptz,
    realized_return double precision, realized_label smallint, realized_t1 timestamptz,
    realized_net_return double precision
) ON COMMIT DROP
"""

# Refreshes the staged rows' statistics: planned as the default-sized table it would
# otherwise be thought to be, the join below read the whole log by hash (106 ms at 200,000
# rows over 116 months) instead of probing it per staged row (4 ms).
ANALYZE_STAGED_OUTCOMES = "ANALYZE staged_outcomes"

# Every logged answer for the (series, bar) gets the outcome, duplicates included; rows
# already realized are left as they are, so a second run changes nothing. %(first)s and
# %(last)s: the staged bars' range, so that only those months of the log (migration 025)
# are planned and read.
UPDATE_FROM_STAGED_OUTCOMES = """
UPDATE model_predictions p
SET realized_return = s.realized_return, realized_label = s.realized_label,
    realized_t1 = s.realized_t1, realized_net_return = s.realized_net_return,
    realized_at = now()
FROM staged_outcomes s
WHERE p.model_version_id = s.model_version_id AND p.role = s.role
  AND p.symbol = s.symbol AND p.bar_ts = s.bar_ts AND p.realized_at IS NULL
  AND p.bar_ts >= %(first)s AND p.bar_ts <= %(last)s
RETURNING p.role
"""

# The (version, role) series of a family with realized predictions: those with a bar in
# live_outcome_bars (migration 017), which the transaction that realizes a series' answers
# fills. One primary-key probe per version and role, off the prediction log: the log is
# partitioned by month (migration 025), and a loose index scan of it took one probe per
# month at every step (41 ms over 116 months of 200,000 rows).
SELECT_REALIZED_SERIES = """
SELECT v.id::text AS model_version_id, r.role
FROM model_versioning v
CROSS JOIN (VALUES ('champion'), ('challenger'), ('previous')) AS r(role)
WHERE v.family = %s
  AND EXISTS (SELECT 1 FROM live_outcome_bars b
              WHERE b.model_version_id = v.id AND b.role = r.role)
ORDER BY 1, 2
"""

# The first logged answer to each (series, bar) whose outcome was just staged, with that
# outcome, into live_outcomes (migration 016), and each bar it added to its series' bar
# list (live_outcome_bars, migration 017). Run after UPDATE_FROM_STAGED_OUTCOMES in the
# same transaction, with the same bar range; a bar already there keeps its row, so a
# second run changes nothing.
INSERT_LIVE_OUTCOMES_FROM_STAGED = """
WITH inserted AS (
    INSERT INTO live_outcomes
        (model_version_id, role, bar_ts, symbol, family, probability, signal, predicted_at,
         realized_return, realized_label, realized_t1, realized_net_return)
    SELECT DISTINCT ON (p.model_version_id, p.role, p.bar_ts, p.symbol)
           p.model_version_id, p.role, p.bar_ts, p.symbol, p.family, p.probability, p.signal,
           p.predicted_at, s.realized_return, s.realized_label, s.realized_t1,
           s.realized_net_return
    FROM staged_outcomes s
    JOIN model_predictions p
      ON p.model_version_id = s.model_version_id AND p.role = s.role
     AND p.symbol = s.symbol AND p.bar_ts = s.bar_ts
     AND p.bar_ts >= %(first)s AND p.bar_ts <= %(last)s
    ORDER BY p.model_version_id, p.role, p.bar_ts, p.symbol, p.predicted_at
    ON CONFLICT DO NOTHING
    RETURNING model_version_id, role, bar_ts
)
INSERT INTO live_outcome_bars (model_version_id, role, bar_ts)
SELECT DISTINCT model_version_id, role, bar_ts FROM inserted
ON CONFLICT DO NOTHING
"""

# The last %(bars)s realized bars of a version in a role, one row per symbol and bar (the
# first answer), as one range of live_outcomes' primary key, read from the index alone
# (migration 017). The first of those bars is the %(bars)s-th last of the series' bar list;
# a series with fewer bars, or a window of 0 bars (LIMIT 0), has no such bar: every
# realized bar is read.
#
# A full window is 12,600 rows at 50 symbols; fetched as rows, Python spends more on one
# object per value than the server on the query. So it comes back as one row: the symbols
# as one string, separated by the unit separator (no symbol holds a control character:
# data/validation.py SYMBOL_PATTERN), and the rest as the rows' `packed` records (migration
# 016) end to end, which NumPy reads whole (store/live.py, WINDOW_RECORD). Both aggregates
# read the same rows in the same order, so the i-th symbol is the i-th record's. Fetched
# in binary (store/live.py), the records arrive as they are, not hex-encoded; with a text
# array of symbols the same read took twice as long.
SELECT_REALIZED_WINDOW = """
SELECT count(*) AS n, string_agg(symbol, E'\\x1f') AS symbols,
       string_agg(packed, ''::bytea) AS records
FROM live_outcomes
WHERE model_version_id = %(version)s AND role = %(role)s
  AND bar_ts >= coalesce((
        SELECT bar_ts FROM live_outcome_bars
        WHERE model_version_id = %(version)s AND role = %(role)s
        ORDER BY bar_ts DESC
        OFFSET greatest(%(bars)s - 1, 0) LIMIT least(%(bars)s, 1)),
        '-infinity')
"""

UPSERT_LIVE_WINDOW = """
INSERT INTO real_time_model_performance
    (model_version_id, role, window_label, window_start, window_end, n_predictions, metrics)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (model_version_id, role, window_label, window_end) DO UPDATE
    SET window_start = EXCLUDED.window_start, n_predictions = EXCLUDED.n_predictions,
        metrics = EXCLUDED.metrics, recorded_at = now()
"""

SELECT_LATEST_LIVE_WINDOW = """
SELECT window_label, window_start, window_end, n_predictions, metrics
FROM real_time_model_performance
WHERE model_version_id = %s AND role = %s AND window_label = %s
ORDER BY window_end DESC, recorded_at DESC
LIMIT 1
"""

COPY_STAGED_OUTCOMES = (
    "COPY staged_outcomes (model_version_id, role, symbol, bar_ts, realized_return,"
    " realized_label, realized_t1, realized_net_return) FROM STDIN"
)

# Drift checks (model_drift_detection) and the yardstick frozen with a version -----------------

FREEZE_DRIFT_YARDSTICK = """
UPDATE model_versioning SET drift_yardstick = %s WHERE id = %s AND drift_yardstick IS NULL
"""

SELECT_DRIFT_YARDSTICK = "SELECT drift_yardstick FROM model_versioning WHERE id = %s"

INSERT_DRIFT_CHECK = """
INSERT INTO model_drift_detection
    (family, model_version_id, dataset_id, reference_window, current_window, method,
     threshold, dataset_drift_score, drift_share, drifted, feature_scores, report_path)
VALUES (%(family)s, %(version_id)s, %(dataset_id)s, %(reference_window)s, %(current_window)s,
        %(method)s, %(threshold)s, %(score)s, %(drift_share)s, %(drifted)s, %(feature_scores)s,
        %(report_path)s)
RETURNING id, checked_at
"""

SELECT_LATEST_DRIFT_CHECK = """
SELECT * FROM model_drift_detection WHERE family = %s ORDER BY checked_at DESC LIMIT 1
"""

# Performance detectors frozen per (version, trigger) and their alarms (sql/020) ------------

SELECT_PERFORMANCE_DETECTOR = """
SELECT config, detector FROM performance_detectors
WHERE model_version_id = %s AND trigger_id = %s
"""

# A changed trigger configuration refreezes; an unchanged one keeps the first write.
UPSERT_PERFORMANCE_DETECTOR = """
INSERT INTO performance_detectors (model_version_id, trigger_id, config, detector)
VALUES (%s, %s, %s, %s)
ON CONFLICT (model_version_id, trigger_id) DO UPDATE
    SET config = EXCLUDED.config, detector = EXCLUDED.detector, frozen_at = clock_now()
    WHERE performance_detectors.config IS DISTINCT FROM EXCLUDED.config
"""

SELECT_OOF_RETURNS = """
SELECT returns_uri, returns_sha256 FROM model_performance_tracking
WHERE model_version_id = %s AND split = 'walk_forward_oof' AND returns_uri IS NOT NULL
ORDER BY evaluated_at DESC LIMIT 1
"""

SELECT_PERFORMANCE_ALARMS = """
SELECT alarm_bar_ts, change_bar_ts FROM performance_alarms
WHERE model_version_id = %s AND trigger_id = %s
ORDER BY alarm_bar_ts
"""

SELECT_LAST_PERFORMANCE_ALARM = """
SELECT * FROM performance_alarms
WHERE model_version_id = %s AND trigger_id = %s
ORDER BY alarm_bar_ts DESC LIMIT 1
"""

INSERT_PERFORMANCE_ALARM = """
INSERT INTO performance_alarms
    (model_version_id, trigger_id, family, metric, alarm_bar_ts, change_bar_ts, statistic,
     threshold, bars_watched, mean_since_change)
VALUES (%(version_id)s, %(trigger_id)s, %(family)s, %(metric)s, %(alarm_bar_ts)s,
        %(change_bar_ts)s, %(statistic)s, %(threshold)s, %(bars_watched)s,
        %(mean_since_change)s)
ON CONFLICT (model_version_id, trigger_id, alarm_bar_ts) DO UPDATE SET family = EXCLUDED.family
RETURNING *
"""

SELECT_TRIGGER_DECISIONS = """
SELECT decided_at, family, rule, outcome, reasons, inputs FROM automated_decision_making
WHERE decision_type = 'retrain_trigger' ORDER BY decided_at
"""

# Live experiments, champion vs challenger (ab_testing_framework, sql/021) ------------------

ABORT_RUNNING_EXPERIMENTS = """
UPDATE ab_testing_framework
SET status = 'aborted', verdict = %(why)s, ended_at = clock_now(), updated_at = clock_now()
WHERE family = %(family)s AND status = 'running'
RETURNING id
"""

INSERT_EXPERIMENT = """
INSERT INTO ab_testing_framework (family, champion_version_id, challenger_version_id, rule)
VALUES (%s, %s, %s, %s)
RETURNING *
"""

SELECT_RUNNING_EXPERIMENT = """
SELECT * FROM ab_testing_framework WHERE family = %s AND status = 'running'
"""

UPDATE_EXPERIMENT_LOOK = """
UPDATE ab_testing_framework
SET statistic = %(statistic)s, n_observations = %(n)s, p_value = %(p_value)s,
    updated_at = clock_now()
WHERE id = %(id)s
"""

CONCLUDE_EXPERIMENT = """
UPDATE ab_testing_framework
SET status = %(status)s, verdict = %(verdict)s, ended_at = clock_now(), updated_at = clock_now()
WHERE id = %(id)s AND status = 'running'
"""

SELECT_EXPERIMENTS = """
SELECT * FROM ab_testing_framework WHERE family = %s ORDER BY started_at
"""

RETIRE_CHALLENGER = """
UPDATE model_versioning SET status = 'not_promoted', status_changed_at = clock_now()
WHERE id = %s AND status = 'challenger'
RETURNING id
"""

# Probation after a promotion and automatic rollback (sql/022) -----------------------------

# The family's latest change of champion, with the version each side of it.
SELECT_LATEST_CHAMPION_MOVE = """
SELECT l.seq, l.action, l.actor, l.recorded_at, l.model_version_id, l.previous_version_id,
       v.version, p.version AS previous_version
FROM model_promotion_ledger l
JOIN model_versioning v ON v.id = l.model_version_id
LEFT JOIN model_versioning p ON p.id = l.previous_version_id
WHERE l.family = %s AND l.action IN ('promote', 'rollback')
ORDER BY l.seq DESC LIMIT 1
"""

SELECT_PROBATION_CONCLUSION = """
SELECT outcome, reasons, decided_at FROM automated_decision_making
WHERE decision_type = 'probation' AND family = %s AND inputs->>'ledger_seq' = %s
  AND outcome IN ('passed', 'rollback')
ORDER BY decided_at DESC LIMIT 1
"""

SELECT_LAST_AUTO_ROLLBACK = """
SELECT max(recorded_at) AS at FROM model_promotion_ledger
WHERE family = %s AND action = 'rollback' AND actor = 'auto-rollback'
"""

SELECT_REMOVED_BY_AUTO_ROLLBACK = """
SELECT EXISTS (SELECT 1 FROM model_promotion_ledger
               WHERE action = 'rollback' AND actor = 'auto-rollback'
                 AND previous_version_id = %s) AS removed
"""

SELECT_LABELS_SHUFFLED = """
SELECT coalesce(d.labels_shuffled, false) AS shuffled
FROM model_versioning v LEFT JOIN training_data_management d ON d.id = v.dataset_id
WHERE v.id = %s
"""

# What the live experiments and probations concluded (every look but "continue"), for people.
SELECT_LIVE_VERDICTS = """
SELECT d.decided_at, d.decision_type, d.family, v.version, d.outcome, d.reasons, d.inputs
FROM automated_decision_making d
LEFT JOIN model_versioning v ON v.id = d.model_version_id
WHERE d.decision_type IN ('live_experiment', 'probation') AND d.outcome <> 'continue'
ORDER BY d.decided_at
"""

# The ML ops report and the dashboard (store/fleet.py) ----------------------------------------

# Per family, version, role and bar: the mean realized net return over the bar's symbols,
# for outcomes realized since %(since)s.
SELECT_LIVE_EQUITY = """
SELECT o.family, v.version, o.role, o.bar_ts, avg(o.realized_net_return) AS net_return
FROM live_outcomes o JOIN model_versioning v ON v.id = o.model_version_id
WHERE o.realized_net_return IS NOT NULL AND o.realized_at >= %(since)s
GROUP BY o.family, v.version, o.role, o.bar_ts
ORDER BY o.bar_ts
"""

SELECT_DRIFT_HISTORY = """
SELECT d.family, v.version, d.checked_at, d.current_window, d.feature_scores, d.drifted,
       d.dataset_drift_score
FROM model_drift_detection d LEFT JOIN model_versioning v ON v.id = d.model_version_id
WHERE d.checked_at >= %(since)s AND d.family IS NOT NULL
ORDER BY d.checked_at
"""

# Everything that happened to the models since %(since)s, one line each: trainings, gate
# results, decisions (deployment, triggers, experiments, probation), ledger moves.
SELECT_TIMELINE = """
SELECT j.created_at AS at, j.family, 'training' AS kind, v.version,
       j.status || ' (' || j.trigger_type || coalesce(': ' || j.reason, '') || ')' AS what
FROM model_training_jobs j LEFT JOIN model_versioning v ON v.training_job_id = j.id
WHERE j.created_at >= %(since)s
UNION ALL
SELECT g.checked_at, v.family, 'gate', v.version,
       g.gate_name || CASE WHEN g.passed THEN ' passed' ELSE ' FAILED' END || ': ' || g.reason
FROM quality_gate_results g JOIN model_versioning v ON v.id = g.model_version_id
WHERE g.checked_at >= %(since)s
UNION ALL
SELECT d.decided_at, d.family, d.decision_type, v.version,
       d.outcome || ': ' || coalesce(d.reasons->>0, '')
FROM automated_decision_making d LEFT JOIN model_versioning v ON v.id = d.model_version_id
WHERE d.decided_at >= %(since)s AND d.outcome <> 'continue'
UNION ALL
SELECT l.recorded_at, l.family, l.action, v.version, l.actor || ': ' || l.reason
FROM model_promotion_ledger l JOIN model_versioning v ON v.id = l.model_version_id
WHERE l.recorded_at >= %(since)s
ORDER BY 1
"""

INSERT_REPORT = """
INSERT INTO ml_ops_reports (report_type, period_start, period_end, format, path, body)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING id, created_at
"""

SELECT_LATEST_REPORTS = """
SELECT id, report_type, period_start, period_end, format, path, created_at
FROM ml_ops_reports WHERE report_type = %s ORDER BY created_at DESC LIMIT %s
"""

INSERT_DASHBOARD_SNAPSHOT = """
INSERT INTO ml_ops_dashboard (fleet, summary) VALUES (%s, %s) RETURNING id, snapshot_at
"""

SELECT_LATEST_DASHBOARD = """
SELECT id, snapshot_at, fleet, summary FROM ml_ops_dashboard ORDER BY snapshot_at DESC LIMIT 1
"""

# Per family, the facts the dashboard shows beside the live window (which store.live reads).
SELECT_DASHBOARD_FACTS = """
SELECT f.family,
  (SELECT row_to_json(m) FROM (SELECT l.recorded_at, l.action, l.actor
     FROM model_promotion_ledger l
     WHERE l.family = f.family AND l.action IN ('promote', 'rollback')
     ORDER BY l.seq DESC LIMIT 1) m) AS last_move,
  (SELECT row_to_json(d) FROM (SELECT drifted, dataset_drift_score, checked_at
     FROM model_drift_detection WHERE family = f.family
     ORDER BY checked_at DESC LIMIT 1) d) AS drift,
  (SELECT count(*) FROM ml_ops_alerts a
   WHERE a.record_type = 'alert' AND a.state <> 'resolved'
     AND a.subject LIKE f.family || ' %%') AS open_alerts,
  (SELECT row_to_json(e) FROM (SELECT status, n_observations, p_value, verdict, started_at
     FROM ab_testing_framework WHERE family = f.family
     ORDER BY started_at DESC LIMIT 1) e) AS experiment
FROM unnest(%s::text[]) AS f(family)
"""

SELECT_EXPERIMENTS_WITH_VERSIONS = """
SELECT e.status, e.verdict, e.n_observations, e.p_value, e.started_at, e.ended_at,
       c.version AS champion_version, h.version AS challenger_version
FROM ab_testing_framework e
JOIN model_versioning c ON c.id = e.champion_version_id
JOIN model_versioning h ON h.id = e.challenger_version_id
WHERE e.family = %s AND (e.status = 'running' OR e.ended_at >= %s)
ORDER BY e.started_at
"""

# Replays (app/replay_dagster.py) -----------------------------------------------------------

SELECT_DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = %s"

# A family's trainings and decisions in the order they happened, for the replay's list.
SELECT_REPLAY_TRAININGS = """
SELECT v.created_at AS at, 'train' AS kind, v.version, coalesce(j.reason, '') AS reason
FROM model_versioning v LEFT JOIN model_training_jobs j ON j.id = v.training_job_id
WHERE v.family = %(family)s
"""
SELECT_REPLAY_DECISIONS = """
SELECT d.decided_at AS at, d.decision_type, d.outcome, v.version, d.reasons,
       t.trigger_type
FROM automated_decision_making d
LEFT JOIN model_versioning v ON v.id = d.model_version_id
LEFT JOIN automated_retraining_triggers t ON t.id::text = d.inputs->>'trigger_id'
WHERE d.family = %(family)s
"""

# What the champions answered, bar by bar (the replay's served signal).
SELECT_CHAMPION_ANSWERS = """
SELECT p.symbol, p.bar_ts AS ts, p.probability AS proba, v.version
FROM model_predictions p JOIN model_versioning v ON v.id = p.model_version_id
WHERE v.family = %s AND p.role = 'champion'
ORDER BY p.bar_ts, p.symbol
"""

COUNT_VERSIONS_OF_FAMILY = "SELECT count(*) AS n FROM model_versioning WHERE family = %s"

SELECT_TRAINING_CPU_SECONDS = """
SELECT coalesce(sum(cpu_seconds), 0) AS seconds FROM model_training_jobs WHERE family = %s
"""

# Requests a trigger recorded with no training of the family after them (a replay cut off
# between the two): they are run when it resumes.
SELECT_UNFINISHED_REQUESTS = """
SELECT d.decided_at, d.reasons, d.inputs, t.trigger_type, t.id AS trigger_id, t.priority
FROM automated_decision_making d
JOIN automated_retraining_triggers t ON t.id::text = d.inputs->>'trigger_id'
WHERE d.decision_type = 'retrain_trigger' AND d.outcome = 'requested' AND d.family = %(family)s
  AND NOT EXISTS (SELECT 1 FROM model_training_jobs j
                  WHERE j.family = %(family)s AND j.created_at >= d.decided_at)
ORDER BY d.decided_at
"""

INSERT_REPLAY_RUN = """
INSERT INTO replay_runs (name, scenario) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING
"""
SELECT_REPLAY_RUN = "SELECT scenario FROM replay_runs WHERE name = %s"
