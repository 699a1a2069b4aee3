"""The one Celery configuration that the executor (which submits steps) and the workers
(which run them) must share: broker, result backend, queues, and the settings that make a
lost worker visible. Read from the environment (ALPHAPLUS_CELERY_BROKER_URL, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alphaplus_mlops.settings import (
    DEFAULT_CELERY_BACKEND_URL,
    ENV_CELERY_BACKEND_URL,
    ENV_CELERY_BROKER_URL,
    Settings,
)

if TYPE_CHECKING:
    from kombu import Queue

TRAINING_QUEUE = "training"
DEFAULT_QUEUE = "dagster"
QUEUES = (TRAINING_QUEUE, DEFAULT_QUEUE)
# Celery's tag for the queue a step is sent to (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG).
QUEUE_TAG = "dagster-celery/queue"

CONFIG_SOURCE = {
    # A task's state goes STARTED with the worker's hostname and pid: what the executor
    # pings to tell a worker that died mid-step from one that is busy.
    "task_track_started": True,
    # One step at a time per process slot: a long training does not hold a queue of others.
    "worker_prefetch_multiplier": 1,
    # SIGTERM (a service manager's stop) waits this long for running steps, then stops
    # them: a worker stops within 15 s, and the executor reports their steps lost.
    "worker_soft_shutdown_timeout": 5.0,
    "broker_connection_retry_on_startup": True,
    "broker_transport_options": {
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    },
}


def executor_config(settings: Settings) -> dict:
    """The run config of the project's Celery executor. URLs that may hold a password stay
    env references, read when a run starts, so the definition (and the UI showing it) never
    holds the value; the default backend, which holds none, is written out."""
    backend_set = settings.celery_backend_url != DEFAULT_CELERY_BACKEND_URL
    return {
        "broker": {"env": ENV_CELERY_BROKER_URL},
        "backend": {"env": ENV_CELERY_BACKEND_URL} if backend_set else DEFAULT_CELERY_BACKEND_URL,
        "config_source": CONFIG_SOURCE,
    }


def task_queues() -> list[Queue]:
    from kombu import Queue

    # As dagster_celery declares its default queue: a routing-key pattern and priorities.
    return [
        Queue(name, routing_key=f"{name}.#", queue_arguments={"x-max-priority": 10})
        for name in QUEUES
    ]
