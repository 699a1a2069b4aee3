-- What the training loop adds: the dataset file's checksum, the evaluation rows a model
-- was judged on, and the small JSON values Dagster assets hand to each other.

ALTER TABLE training_data_management
    ADD COLUMN artifact_sha256 text CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN feature_version text;

ALTER TABLE model_versioning
    ADD COLUMN training_path text CHECK (training_path IN ('full', 'incremental')),
    ADD COLUMN oof_uri text,
    ADD COLUMN oof_sha256 text CHECK (oof_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN train_seconds double precision,
    ADD COLUMN notes jsonb NOT NULL DEFAULT '[]'::jsonb;

CREATE INDEX model_performance_split_idx ON model_performance_tracking (split, evaluated_at);

-- Values passed between assets (dataset and model references): the last value per asset
-- partition, with the run that wrote it. Artifacts themselves live in the artifact store.
CREATE TABLE dagster_asset_values (
    asset_key     text        NOT NULL,
    partition_key text        NOT NULL DEFAULT '',
    run_id        text        NOT NULL,
    value         jsonb       NOT NULL,
    written_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_key, partition_key)
);
