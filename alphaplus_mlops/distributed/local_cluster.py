"""Celery workers and training runs as separate processes on this host: what the worker
tests and bench/scale_out.py start. Each run is orchestrated by its own `dagster job
execute` process (as a run launcher would start it); its steps go to the workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil

from alphaplus_mlops.store.db import dagster_storage_url

BIN = Path(sys.executable).parent
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def deployment_environment(
    url: str, folder: Path, dagster_home: Path, **settings: str
) -> dict[str, str]:
    """The environment of every process of one deployment on the database ``url``: the
    project's and Dagster's storage in ``folder``, the instance in ``dagster_home``, and
    ``settings`` as further variables."""
    return {
        **os.environ,
        "ALPHAPLUS_DATABASE_URL": url,
        "ALPHAPLUS_HOME": str(folder / "alphaplus"),
        "DAGSTER_HOME": str(dagster_home),
        "ALPHAPLUS_DAGSTER_PG_URL": dagster_storage_url(url),
        "ALPHAPLUS_DAGSTER_STORAGE": str(folder / "storage"),
        **settings,
    }


@contextmanager
def private_vhost(base_url: str = DEFAULT_BROKER_URL) -> Iterator[str]:
    """A RabbitMQ virtual host of its own for the block (no one else's messages in its
    queues, none left behind), where `rabbitmqctl` may make one; else ``base_url``."""
    vhost = f"apm-{uuid.uuid4().hex[:10]}"
    try:
        made = subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True)
    except FileNotFoundError:
        made = None
    if made is None or made.returncode != 0:
        yield base_url
        return
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"{base_url.rstrip('/')}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


@contextmanager
def workers(
    env: dict, logs: Path, count: int, concurrency: int = 1
) -> Iterator[list[subprocess.Popen]]:
    """`alphaplus-mlops worker` processes, ready when the block starts, killed after it."""
    started = []
    for n in range(count):
        with open(logs / f"worker{n}.log", "wb") as log:
            started.append(
                subprocess.Popen(
                    [str(BIN / "alphaplus-mlops"), "worker", "--concurrency", str(concurrency)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        deadline = time.monotonic() + 60
        for n, process in enumerate(started):
            log = logs / f"worker{n}.log"
            while b" ready." not in log.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {n} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def start_training(
    env: dict, folder: Path, family: str, symbols: Sequence[str], rounds: int
) -> subprocess.Popen:
    """A train_model run of ``family`` in a process of its own (early stopping off)."""
    config = folder / f"{family}-{uuid.uuid4().hex[:6]}.json"
    trained = {"n_estimators": rounds, "cv_splits": 2, "early_stopping_rounds": 0}
    config.write_text(
        json.dumps(
            {
                "ops": {
                    "training_dataset": {"config": {"symbols": list(symbols)}},
                    "trained_model": {"config": trained},
                }
            }
        )
    )
    tags = {"dagster/partition": family, "alphaplus/training": "true"}
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "alphaplus_mlops.definitions"]
        + ["-j", "train_model", "-c", str(config), "--tags", json.dumps(tags)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def pool_processes(worker: subprocess.Popen) -> set[int]:
    """A worker's main process and its pool's."""
    return {worker.pid} | {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}


def alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped (a container's pid 1 may not reap)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def max_overlap(intervals: Sequence[tuple]) -> int:
    """The most intervals (start, end) open at one moment; one ending as another starts
    does not overlap it."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
