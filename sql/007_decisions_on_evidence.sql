-- Decisions on evidence (deploy-v2).
--
-- A candidate that is not promoted but never served gets a status of its own; `retired`
-- stays for former champions.
ALTER TABLE model_versioning DROP CONSTRAINT model_versioning_status_check;
ALTER TABLE model_versioning ADD CONSTRAINT model_versioning_status_check
    CHECK (status IN ('candidate', 'challenger', 'champion', 'retired', 'rejected',
                      'rolled_back', 'not_promoted'));

-- Deflated Sharpe counts every trial on the same label definition, across families and
-- configurations, except sabotage drills (shuffled labels), and discounts correlated trials:
-- each evaluation keeps its per-bar net returns so the next can measure the correlation.
ALTER TABLE training_data_management
    ADD COLUMN labels_shuffled boolean NOT NULL DEFAULT false;
ALTER TABLE model_performance_tracking
    ADD COLUMN returns_uri text,
    ADD COLUMN returns_sha256 text;
CREATE INDEX performance_split_idx ON model_performance_tracking (split, evaluated_at);

-- The tolerance on one noisy difference gives way to paired tests in the deployment rule.
UPDATE quality_gates SET champion_tolerance = NULL, updated_at = now()
WHERE name IN ('model_performance', 'business_metrics');

-- A fixed ROC-AUC floor means different evidence on different amounts of data (0.52 is
-- three standard errors on 7,000 rows, one on 1,000): the model gate asks instead that the
-- AUC's excess over 0.5 be significant (one-sided Mann-Whitney p-value), chance level at
-- least, and a log loss no worse than a coin's (ln 2 = 0.693, a little slack).
UPDATE quality_gates
SET metric = 'roc_auc_p_value', comparator = '<=', threshold = 0.05, updated_at = now(),
    config = '{"also": {"roc_auc": {"comparator": ">=", "threshold": 0.5},
                        "log_loss": {"comparator": "<=", "threshold": 0.70}}}'::jsonb
WHERE name = 'model_performance';

-- Drift is a reason to retrain, not to reject a candidate: the drift gate no longer blocks.
-- (The row stays, disabled, because past gate results refer to it.)
UPDATE quality_gates SET enabled = false, updated_at = now() WHERE name = 'drift';

-- How much evidence a comparison with the champion needs, and how significant a difference
-- must be. threshold: the fewest shared bars per symbol; below it the candidate shadows the
-- champion as challenger. alpha_better promotes, alpha_worse turns the candidate down
-- (both one-sided, on the per-bar net-return difference with a Newey-West standard error).
-- The candidate's side of the comparison is its own procedure replayed on those bars:
-- refit every refit_every_bars bars (at most max_refits times), each refit on the rows whose
-- labels had ended by its first bar, none with fewer than min_train_bars bars of training.
-- This row configures the deployment decision; it is not a pass/fail gate.
INSERT INTO quality_gates (name, gate_type, metric, comparator, threshold, config)
VALUES ('champion_comparison', 'champion_comparison', 'evidence_bars', '>=', 250,
        '{"alpha_better": 0.05, "alpha_worse": 0.025, "refit_every_bars": 63,
          "max_refits": 4, "min_train_bars": 126}'::jsonb);
