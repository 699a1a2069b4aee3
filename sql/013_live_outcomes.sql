-- Live outcomes: what each logged prediction turned out to be, and rolling live metrics.
--
-- realized_net_return is the paper P&L of the prediction's bar, net of the costs the
-- business gate charges: the position taken at the bar's close earns the next bar's
-- return and pays the cost of changing it. realized_t1 is the bar that decided the label,
-- so a reader can check that nothing was realized before its label interval ended.
ALTER TABLE model_predictions
    ADD COLUMN IF NOT EXISTS realized_net_return double precision,
    ADD COLUMN IF NOT EXISTS realized_t1 timestamptz;

-- prediction_outcomes reads a family's unrealized rows; the older partial index is on
-- bar_ts alone and would scan every family's backlog.
CREATE INDEX IF NOT EXISTS predictions_family_unrealized_idx
    ON model_predictions (family, bar_ts) WHERE realized_at IS NULL;

-- Live metrics are kept per role: a version answering as challenger, then as champion,
-- has two track records. Rows written before this migration were champions' (the only
-- role then); the default fills them and is dropped so writers must say the role.
ALTER TABLE real_time_model_performance
    ADD COLUMN IF NOT EXISTS role text NOT NULL DEFAULT 'champion'
        CHECK (role IN ('champion', 'challenger', 'previous'));
ALTER TABLE real_time_model_performance ALTER COLUMN role DROP DEFAULT;

-- One row per (version, role, window, window end): live_performance run twice over the
-- same realized bars updates its row instead of adding one; status reads the latest.
CREATE UNIQUE INDEX IF NOT EXISTS realtime_perf_window_idx
    ON real_time_model_performance (model_version_id, role, window_label, window_end);
