-- Unattended operation: runs that die without a word, and decisions left half-done.
--
-- A training run's worker beats `heartbeat_at` from a thread of its own while the row is
-- running, whatever the fit is doing; a running row whose heartbeat has stopped belongs to
-- a worker that was killed (SIGKILL, out of memory, a lost machine), and the reaper
-- closes it. Rows still running when this migration applies start from their last sign.
-- The worker's host and process id say which process to look at (or to stop).
ALTER TABLE model_training_jobs
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN worker_host text,
    ADD COLUMN worker_pid integer;
UPDATE model_training_jobs
SET heartbeat_at = coalesce(progress_updated_at, started_at, created_at)
WHERE status = 'running';
CREATE INDEX training_jobs_running_heartbeat_idx ON model_training_jobs (heartbeat_at)
    WHERE status = 'running';

-- Reconciliation looks for `promote` decisions without their ledger row.
CREATE INDEX decisions_outcome_idx ON automated_decision_making (decision_type, outcome, decided_at);
