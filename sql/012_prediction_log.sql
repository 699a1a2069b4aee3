-- The prediction log: every answer the signal service gives (champion and shadows) is a row.
--
-- The row id is made by the service when it predicts (a client-side uuid), not by the
-- database: a batch that was spooled to a local file while the database was away is
-- replayed with INSERT ... ON CONFLICT (id) DO NOTHING, so a batch written twice (committed,
-- then replayed because the commit's answer was lost) is still one row per prediction.
-- The default stays for writers that have no id of their own.

-- The family served, so per-family queries need no join; rows logged before this
-- migration take their version's family.
ALTER TABLE model_predictions
    ADD COLUMN family text,
    ADD COLUMN request_id text;
UPDATE model_predictions p
SET family = v.family
FROM model_versioning v
WHERE v.id = p.model_version_id AND p.family IS NULL;
ALTER TABLE model_predictions ALTER COLUMN family SET NOT NULL;

-- During a probation window after a promotion, the previous champion answers in shadow.
ALTER TABLE model_predictions DROP CONSTRAINT IF EXISTS model_predictions_role_check;
ALTER TABLE model_predictions ADD CONSTRAINT model_predictions_role_check
    CHECK (role IN ('champion', 'challenger', 'previous'));

-- The same bar may be asked for by several requests, and each answer is a logged
-- prediction: (version, role, symbol, bar) is no longer unique.
ALTER TABLE model_predictions
    DROP CONSTRAINT IF EXISTS model_predictions_model_version_id_role_symbol_bar_ts_key;
-- Live performance reads a version's answers in a role over a window of bars; monitoring
-- reads a family's recent bars and the latest logged rows.
CREATE INDEX IF NOT EXISTS predictions_version_role_ts_idx
    ON model_predictions (model_version_id, role, bar_ts);
CREATE INDEX IF NOT EXISTS predictions_family_ts_idx ON model_predictions (family, bar_ts);
CREATE INDEX IF NOT EXISTS predictions_predicted_at_idx ON model_predictions (predicted_at);
