"""Steps on other hosts: Dagster's Celery executor with the project's settings."""
