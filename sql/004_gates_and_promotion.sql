-- Quality gate results, two more gates (data quality, serving), and statuses for rollback.

ALTER TABLE model_versioning DROP CONSTRAINT model_versioning_status_check;
ALTER TABLE model_versioning ADD CONSTRAINT model_versioning_status_check
    CHECK (status IN ('candidate', 'challenger', 'champion', 'retired', 'rejected',
                      'rolled_back'));

-- Every gate judgement: which version, which gate, what was measured against what, and a
-- sentence a person can read. Promotion reads these, never a cached flag.
CREATE TABLE quality_gate_results (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version_id  uuid        REFERENCES model_versioning (id),
    dataset_id        uuid        REFERENCES training_data_management (id),
    gate_id           uuid        REFERENCES quality_gates (id),
    gate_name         text        NOT NULL,
    passed            boolean     NOT NULL,
    measured          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    thresholds        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reason            text        NOT NULL,
    severity          text        NOT NULL CHECK (severity IN ('ERROR', 'WARN')),
    dagster_run_id    text,
    checked_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Data-quality gates judge a dataset before any model exists; the others a version.
    CHECK (model_version_id IS NOT NULL OR dataset_id IS NOT NULL)
);
CREATE INDEX gate_results_model_idx ON quality_gate_results (model_version_id, gate_name, checked_at);
CREATE INDEX gate_results_dataset_idx ON quality_gate_results (dataset_id, gate_name, checked_at);

INSERT INTO quality_gates (name, gate_type, metric, comparator, threshold, champion_tolerance, config)
VALUES
    ('data_quality', 'data_quality', 'rows', '>=', 300, NULL,
     '{"min_class_share": 0.2}'::jsonb),
    ('serving', 'serving', 'onnx_parity', '<=', 0.0001, NULL,
     '{"also": {"onnx_p99_us": {"comparator": "<=", "threshold": 20000}}}'::jsonb);

-- The drift gate compares the recent window's mean feature PSI with the same statistic for
-- ordinary historical windows of the same length (its 95th percentile): on daily data
-- volatility clusters, so a fixed PSI limit fires on every window.
UPDATE quality_gates
SET metric = 'psi_vs_history', comparator = '<=', threshold = 1.5, updated_at = now(),
    config = '{"recent_window_bars": 63, "calibration_quantile": 0.95,
               "calibration_windows": 30}'::jsonb
WHERE name = 'drift';

CREATE INDEX ledger_action_idx ON model_promotion_ledger (action, recorded_at);
