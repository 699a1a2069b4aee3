"""Training progress at a bounded rate: to the job row and to the Dagster run log."""

import time

import dagster as dg
import psutil

from alphaplus_mlops.families.base import Progress
from alphaplus_mlops.store.registry import update_training_progress


class TrainingProgress:
    """Maps each fit's iterations onto one run-wide count and reports at most every
    ``min_interval`` seconds (and at the very end), whatever the boosting speed."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        url: str,
        job_id: str,
        total: int,
        min_interval: float = 2.0,
    ):
        self.context, self.url, self.job_id, self.total = context, url, job_id, total
        self.min_interval = min_interval
        self.offset = 0
        self.done = 0
        self.peak_rss = psutil.Process().memory_info().rss
        self._last_report = 0.0
        self._last: Progress | None = None
        self._reported = -1

    def stage(self, completed_iterations: int) -> None:
        """Start the next fit after ``completed_iterations`` run-wide iterations."""
        self.offset = completed_iterations

    def __call__(self, progress: Progress) -> None:
        self.done = self.offset + progress.iteration
        self._last = progress
        now = time.monotonic()
        if now - self._last_report >= self.min_interval or self.done >= self.total:
            self._report(progress)
            self._last_report = now

    def flush(self) -> None:
        if self._last is not None and self._reported != self.done:
            self._report(self._last)

    def _report(self, progress: Progress) -> None:
        self._reported = self.done
        self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)
        update_training_progress(
            self.url,
            self.job_id,
            self.done,
            self.total,
            progress.metric_name,
            progress.metric_value,
            self.peak_rss,
        )
        self.context.log.info(
            f"iteration {self.done}/{self.total} {progress.metric_name}={progress.metric_value:.5f}"
        )
