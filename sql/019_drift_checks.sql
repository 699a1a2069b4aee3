-- Drift checks against a yardstick frozen per model version.
--
-- A version's yardstick (the drift statistic between consecutive windows of its training
-- period, and the limit a live window is held to) is computed once, from the training rows
-- alone, and kept with the version: later checks of the same version are all held to the
-- same limit, whatever the market did since.
ALTER TABLE model_versioning ADD COLUMN drift_yardstick jsonb;

CREATE INDEX drift_family_checked_idx ON model_drift_detection (family, checked_at);

-- feature_drift is judged on the calibrated statistic: its ratio to the version's yardstick
-- limit. The PSI limit of the seed fired at every check on daily data.
UPDATE ml_ops_alerts
SET condition = '{"metric": "drift_ratio", "comparator": ">", "threshold": 1.0}'::jsonb,
    message = 'Feature drift beyond what the model''s training period shows as ordinary'
WHERE record_type = 'rule' AND name = 'feature_drift';
