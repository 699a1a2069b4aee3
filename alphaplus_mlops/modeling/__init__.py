"""Datasets, fitting and assessment of models: the ML path, without Dagster or a database."""
