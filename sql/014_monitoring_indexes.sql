-- Indexes for the monitoring queries over a large prediction log (performance goal P5).
--
-- They serve the queries of store/queries.py that otherwise read a family's whole log:
--
-- SELECT_REALIZED_SERIES (live_performance): the (version, role) series of a family with
-- realized predictions, found by a loose index scan of this index, one probe per series.
-- Its many equal keys are deduplicated by the B-tree, so it stays small.
CREATE INDEX IF NOT EXISTS predictions_realized_series_idx
    ON model_predictions (family, model_version_id, role) WHERE realized_at IS NOT NULL;

-- SELECT_PENDING_SERIES (prediction_outcomes): the series with unrealized predictions and
-- the first unrealized bar of each, by a loose index scan. Unrealized rows only, so it
-- stays as small as the backlog.
CREATE INDEX IF NOT EXISTS predictions_pending_series_idx
    ON model_predictions (family, model_version_id, role, symbol, bar_ts)
    WHERE realized_at IS NULL;

-- One series (version, role, symbol) by bar, for SELECT_PENDING_SERIES again: where a
-- pending series' paper P&L starts (its last prediction before the first unrealized bar)
-- and its rows from there. The (version, role, bar_ts) index of migration 012 would read
-- every symbol's answers to the version's bars for that.
CREATE INDEX IF NOT EXISTS predictions_series_ts_idx
    ON model_predictions (model_version_id, role, symbol, bar_ts);
