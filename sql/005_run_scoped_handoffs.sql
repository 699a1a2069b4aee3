-- Two runs of one family at once (a schedule and a manual retrain, say) must each read the
-- dataset and model their own run produced: hand-offs are kept per run, and a reader takes
-- its own run's value first, else the latest.
ALTER TABLE dagster_asset_values DROP CONSTRAINT dagster_asset_values_pkey;
ALTER TABLE dagster_asset_values ADD PRIMARY KEY (asset_key, partition_key, run_id);
CREATE INDEX dagster_asset_values_latest_idx
    ON dagster_asset_values (asset_key, partition_key, written_at DESC);
