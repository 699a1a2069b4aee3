"""Evidence for the retrain triggers: what the store holds, read through the monitoring core
(no Dagster here; the sensors in defs/trigger_sensors.py turn evidence into requests)."""
