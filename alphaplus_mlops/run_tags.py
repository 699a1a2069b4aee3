"""Run tag keys: how a run says why it exists. One list for the CLI, schedules and assets."""

import uuid

TRIGGER_TYPE = "alphaplus/trigger_type"
TRIGGER_ID = "alphaplus/trigger_id"
REASON = "alphaplus/reason"
REQUESTED_BY = "alphaplus/requested_by"
# Runs carrying this tag count against the 3-training cap in dagster.yaml.
TRAINING = "alphaplus/training"
PRIORITY = "dagster/priority"
PARTITION = "dagster/partition"
# Read by Dagster's K8s run launcher (deploy/helm): the pod a run gets.
K8S_CONFIG = "dagster-k8s/config"


def trigger_id_from_tag(value: object) -> str | None:
    """A trigger id from a run tag: a UUID string, or None for anything else."""
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None
