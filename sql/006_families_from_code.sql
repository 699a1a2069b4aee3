-- Which model families exist is decided by the code (families/ registers them), so that a
-- new family needs no schema change: the fixed list gives way to a check on the name's form,
-- the same rule the family registry applies.
ALTER TABLE model_training_jobs DROP CONSTRAINT model_training_jobs_family_check;
ALTER TABLE model_training_jobs
    ADD CONSTRAINT model_training_jobs_family_check CHECK (family ~ '^[A-Za-z0-9_]+$');
ALTER TABLE model_versioning DROP CONSTRAINT model_versioning_family_check;
ALTER TABLE model_versioning
    ADD CONSTRAINT model_versioning_family_check CHECK (family ~ '^[A-Za-z0-9_]+$');
