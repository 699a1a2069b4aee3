-- One clock for the times decisions are taken at and compared with: retrain requests
-- (cooldown and budget), trainings (the model-age schedule), versions' status changes,
-- decisions, deployment stages, experiments, detectors and alarms, and the promotion ledger
-- ("which model served at time t").
--
-- In production it is the wall clock. A replay's database runs on the market's clock
-- (ALTER DATABASE ... SET alphaplus.clock = 'market', done by `alphaplus-mlops replay
-- --engine dagster`): the time is the latest revealed bar's plus the wall time since it was
-- revealed, so a 5-day cooldown means five market days while the market moves a year in
-- minutes, and times stay increasing within a tick. Operational times (heartbeats and the
-- reaper, alert deliveries and their back-off, gate evidence age, bar ingestion) stay on the
-- wall clock in both: they measure the machine, not the market.
CREATE OR REPLACE FUNCTION clock_now() RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN current_setting('alphaplus.clock', true) = 'market' THEN
        coalesce((SELECT ts + (clock_timestamp() - ingested_at)
                  FROM market_bars ORDER BY ts DESC, ingested_at DESC LIMIT 1),
                 clock_timestamp())
    ELSE now() END
$$;

ALTER TABLE model_training_jobs ALTER COLUMN created_at SET DEFAULT clock_now();
ALTER TABLE model_versioning ALTER COLUMN created_at SET DEFAULT clock_now();
ALTER TABLE model_versioning ALTER COLUMN status_changed_at SET DEFAULT clock_now();
ALTER TABLE automated_decision_making ALTER COLUMN decided_at SET DEFAULT clock_now();
ALTER TABLE model_deployment_pipeline ALTER COLUMN created_at SET DEFAULT clock_now();
ALTER TABLE ab_testing_framework ALTER COLUMN started_at SET DEFAULT clock_now();
ALTER TABLE ab_testing_framework ALTER COLUMN updated_at SET DEFAULT clock_now();
ALTER TABLE performance_detectors ALTER COLUMN frozen_at SET DEFAULT clock_now();
ALTER TABLE performance_alarms ALTER COLUMN detected_at SET DEFAULT clock_now();
-- The ledger keeps clock_timestamp() on the wall clock: rows of one transaction stay ordered.
ALTER TABLE model_promotion_ledger ALTER COLUMN recorded_at SET DEFAULT
    CASE WHEN current_setting('alphaplus.clock', true) = 'market' THEN clock_now()
         ELSE clock_timestamp() END;
