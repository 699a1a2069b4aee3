-- Default configuration a fresh installation starts with. Thresholds are starting points;
-- later runs read these rows, so changing a row changes the next run.

INSERT INTO automated_retraining_triggers (name, trigger_type, config, cooldown_seconds, priority)
VALUES
    ('drift_threshold', 'drift',
     '{"statistic": "psi", "threshold": 0.25, "importance_weighted": true,
       "current_window_bars": 63, "calibrate_against_history": true}'::jsonb,
     5 * 86400, 5),
    ('performance_degradation', 'performance',
     '{"metric": "net_sharpe", "window_bars": 63, "min_value": 0.0,
       "max_drop_vs_offline": 0.5, "min_observations": 40}'::jsonb,
     5 * 86400, 8),
    ('time_based', 'time',
     '{"max_model_age_days": 30}'::jsonb,
     86400, 1);

INSERT INTO quality_gates (name, gate_type, metric, comparator, threshold, champion_tolerance, config)
VALUES
    ('model_performance', 'model_performance', 'roc_auc', '>=', 0.52, 0.02,
     '{"also": {"log_loss": {"comparator": "<=", "threshold": 0.70}}}'::jsonb),
    ('drift', 'drift', 'max_feature_psi', '<=', 0.25, NULL,
     '{"recent_window_bars": 63}'::jsonb),
    ('business_metrics', 'business_metrics', 'net_sharpe', '>=', 0.0, 0.25,
     '{"also": {"max_drawdown": {"comparator": "<=", "threshold": 0.35},
                "deflated_sharpe": {"comparator": ">=", "threshold": 0.5}},
       "cost_bps": 5}'::jsonb);

INSERT INTO ml_ops_alerts (record_type, name, category, severity, condition, message)
VALUES
    ('rule', 'live_performance_decay', 'performance', 'critical',
     '{"metric": "net_sharpe", "window_bars": 63, "comparator": "<", "threshold": 0.0}'::jsonb,
     'Live net Sharpe of a champion fell below its floor'),
    ('rule', 'feature_drift', 'drift', 'warning',
     '{"metric": "max_feature_psi", "comparator": ">", "threshold": 0.25}'::jsonb,
     'Feature drift above threshold against the training window'),
    ('rule', 'pipeline_failure', 'pipeline', 'critical',
     '{"event": "run_failure", "jobs": ["*"]}'::jsonb,
     'A training or promotion run failed'),
    ('rule', 'system_resources', 'system', 'warning',
     '{"metric": "peak_rss_bytes", "comparator": ">", "threshold": 8589934592}'::jsonb,
     'A training run used more memory than allowed');
