"""Dagster's Celery executor, with one addition: a step whose worker died is failed with a
reason instead of being waited for forever.

dagster_celery submits each step as a Celery task and polls its result. A worker killed
mid-step (SIGKILL, OOM, a lost host) never sends one, so the run would wait until someone
noticed. Here each submitted task's result is watched: once the task has STARTED on a
worker (``task_track_started`` reports its hostname and pid), that worker is pinged over the
broker every few seconds, and after two unanswered pings the step fails (a STEP_FAILURE
event naming the worker, its pid and the step, as the UI shows any failed step). The run
then ends as failed, its pool slots are freed at once, and the cap of 3 trainings gets its
slot back; the reaper marks the training row failed on its next tick (the run has ended).
"""

from __future__ import annotations

import sys
import time
import warnings

import dagster as dg
from celery.exceptions import DuplicateTaskNameWarning, TaskRevokedError, WorkerLostError
from dagster._core.events import DagsterEvent
from dagster._core.execution.plan.objects import ErrorSource, StepFailureData
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._serdes import serialize_value
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task

PING_EVERY_SECONDS = 5.0
PING_TIMEOUT_SECONDS = 2.0
MISSES_BEFORE_LOST = 2


class WatchedResult:
    """A Celery AsyncResult that turns 'ready' with a step failure once its worker is gone."""

    def __init__(self, app, result, step_context):
        self._app, self._result, self._step_context = app, result, step_context
        self._step_key = step_context.step.key
        self._next_ping = time.monotonic() + PING_EVERY_SECONDS
        self._misses = 0
        self.lost: str | None = None

    def ready(self) -> bool:
        if self.lost is not None or self._result.ready():
            return True
        if time.monotonic() < self._next_ping:
            return False
        self._next_ping = time.monotonic() + PING_EVERY_SECONDS
        state = self._result.state
        if state == "RETRY":
            # A worker stopped by SIGTERM ends its running steps and puts them back on the
            # queue; a step half done elsewhere is not resumed behind the run's back.
            self._result.revoke()
            self.lost = f"its worker was stopped while it ran step {self._step_key}"
            return True
        info = self._result.info if state == "STARTED" else None
        worker = info.get("hostname") if isinstance(info, dict) else None
        if worker is None:
            return False  # queued: no worker has it yet
        answered = self._app.control.ping(destination=[worker], timeout=PING_TIMEOUT_SECONDS)
        self._misses = 0 if answered else self._misses + 1
        if self._misses >= MISSES_BEFORE_LOST:
            self.lost = (
                f"celery worker {worker} (pid {info.get('pid')}) stopped answering while it ran "
                f"step {self._step_key}: it was killed or lost its host; the step's work is lost"
            )
        return self.lost is not None

    def get(self):
        """The step's events; a STEP_FAILURE naming the cause when its worker died or the
        task failed outside the step (dagster_celery would record that error and then
        wait for the step forever)."""
        if self.lost is None:
            try:
                return self._result.get()
            except TaskRevokedError:
                raise  # the loop reports a revoked task itself
            except Exception as exc:  # noqa: BLE001 - any task error is this step's failure
                self.lost = f"its celery task failed on the worker: {exc!r}"
        try:
            raise WorkerLostError(self.lost)
        except WorkerLostError:
            error = serializable_error_info_from_exc_info(sys.exc_info())
        failure = DagsterEvent.step_failure_event(
            self._step_context,
            StepFailureData(error, None, error_source=ErrorSource.FRAMEWORK_ERROR),
            message=f'Execution of step "{self._step_key}" failed: {self.lost}.',
        )
        return [serialize_value(failure)]

    def revoke(self):
        return self._result.revoke()


def _submit_watched(app, plan_context, step, queue, priority, known_state):
    with warnings.catch_warnings():
        # dagster_celery registers its task anew for every step it submits; Celery warns
        # each time that the name is taken (the first registration, the same task, wins).
        warnings.simplefilter("ignore", DuplicateTaskNameWarning)
        result = _submit_task(app, plan_context, step, queue, priority, known_state)
    return WatchedResult(app, result, plan_context.for_step(step))


class WatchedCeleryExecutor(CeleryExecutor):
    def execute(self, plan_context, execution_plan):
        try:
            yield from core_celery_execution_loop(
                plan_context, execution_plan, step_execution_fn=_submit_watched
            )
        finally:
            # A lost step never reports its end, so its pool slot would stay claimed until
            # the daemon's run monitoring freed it minutes later; every step is over here.
            plan_context.instance.event_log_storage.free_concurrency_slots_for_run(
                plan_context.run_id
            )


@dg.executor(
    name="alphaplus_celery",
    config_schema={**CELERY_CONFIG, "retries": get_retries_config()},
    requirements=dg.multiple_process_executor_requirements(),
)
def watched_celery_executor(init_context):
    """dagster_celery's executor, failing a step whose worker died (see module doc)."""
    config = init_context.executor_config
    return WatchedCeleryExecutor(
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
    )
