-- Probation after a promotion (core/probation.py): the previous champion answers in shadow
-- and probation_review rolls the new champion back automatically (ledger actor
-- 'auto-rollback') when it is significantly worse on live outcomes or breaks a guardrail.
-- The rule is a row, like the live experiment's; it is not a pass/fail gate of a candidate.
INSERT INTO quality_gates (name, gate_type, metric, comparator, threshold, config)
VALUES ('auto_rollback', 'auto_rollback', 'one_sided_always_valid_p_value', '<=', 0.05,
        '{"tau_sd": 0.1, "min_bars": 40, "max_bars": 252, "max_drawdown": 0.15,
          "max_log_loss_excess": 0.02, "cooldown_seconds": 604800}'::jsonb);

-- A person hears of every automatic rollback, and of one the hysteresis refused.
INSERT INTO ml_ops_alerts (record_type, name, category, severity, condition, message)
VALUES
    ('rule', 'auto_rollback', 'performance', 'critical', '{}'::jsonb,
     'A new champion was worse than the one it replaced on live outcomes');
