"""Long-running processes stop on SIGTERM (a service manager's stop) within 15 s, their
children included, even when started in the background with SIGINT and SIGTERM ignored."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from alphaplus_mlops.distributed.local_cluster import alive
from alphaplus_mlops.store.migrations import migrate

BIN = Path(sys.executable).parent


def started_in_background() -> None:
    """What a non-interactive shell's `cmd &` gives a child: SIGINT and SIGTERM ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def tree(pid: int) -> set[int]:
    return {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}


def stop_and_time(process: subprocess.Popen, pids: set[int], limit: float = 30) -> float:
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    while any(map(alive, pids)) and time.monotonic() - sent < limit:
        time.sleep(0.1)
    process.wait(timeout=5)
    return time.monotonic() - sent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the process exited before it answered"
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


SUPERVISED = textwrap.dedent(
    """
    import signal, subprocess, sys
    from alphaplus_mlops.app.processes import supervise
    # A child that ignores its stop signal and leaves a grandchild of its own behind.
    child = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print('ready', flush=True); time.sleep(600)"
    )
    sys.exit(supervise([sys.executable, "-c", child], grace_seconds=1.0))
    """
)


def test_supervise_passes_the_stop_on_and_kills_what_ignores_it():
    top = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=started_in_background,
    )
    assert top.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while len(tree(top.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = tree(top.pid)
    assert len(pids) == 3  # supervisor, child, grandchild
    took = stop_and_time(top, pids)
    assert not [pid for pid in pids if alive(pid)]
    assert 1.0 <= took < 5, took  # the grace, then the group is killed
    assert top.returncode == 128 + signal.SIGTERM


@pytest.mark.daemon
def test_dev_stops_on_sigterm_with_its_webserver_daemon_and_code_servers(create_database, tmp_path):
    url = create_database()
    migrate(url)
    port = free_port()
    env = {
        **os.environ,
        "ALPHAPLUS_DATABASE_URL": url,
        "ALPHAPLUS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(Path(__file__).resolve().parents[1]),
    }
    dev = subprocess.Popen(
        [str(BIN / "alphaplus-mlops"), "dev", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=started_in_background,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", dev)
        deadline = time.monotonic() + 60
        while len(tree(dev.pid)) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)  # webserver, daemon and code server(s) under dagster dev
        pids = tree(dev.pid)
        assert len(pids) >= 5, pids
        took = stop_and_time(dev, pids)
        assert not [pid for pid in pids if alive(pid)], "processes left behind"
        assert took < 15, took
    finally:
        for pid in tree(dev.pid) if dev.poll() is None else ():
            os.kill(pid, signal.SIGKILL)


def test_serve_stops_on_sigterm(create_database, tmp_path):
    url = create_database()
    migrate(url)
    port = free_port()
    env = {**os.environ, "ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(tmp_path)}
    serve = subprocess.Popen(
        [str(BIN / "alphaplus-mlops"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=started_in_background,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", serve)
        pids = tree(serve.pid)
        took = stop_and_time(serve, pids)
        assert not [pid for pid in pids if alive(pid)]
        assert took < 15, took
    finally:
        if serve.poll() is None:
            serve.kill()
