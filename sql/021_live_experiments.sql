-- Champion vs challenger on live outcomes. A challenger shadowed by the deployment decision
-- starts an experiment (one running per family); ab_evaluation looks at it as outcomes
-- arrive and concludes it: promote the challenger, stop it, or let it expire. The rule is a
-- row (quality_gates 'live_experiment'), copied into the experiment when it starts, so a
-- changed row governs the next experiment, not one already running.
ALTER TABLE ab_testing_framework
    ADD COLUMN rule       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE UNIQUE INDEX ab_testing_one_running_per_family
    ON ab_testing_framework (family) WHERE status = 'running';

-- Not a pass/fail gate of a candidate: the rule of the live experiment (core/experiment.py).
INSERT INTO quality_gates (name, gate_type, metric, comparator, threshold, config)
VALUES ('live_experiment', 'live_experiment', 'always_valid_p_value', '<=', 0.05,
        '{"tau_sd": 0.05, "min_bars": 30, "max_bars": 504, "max_drawdown": 0.25,
          "max_log_loss_excess": 0.02}'::jsonb);
