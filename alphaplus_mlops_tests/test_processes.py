"""Long-running processes stop on SIGTERM (a service manager's stop) within 15 s, their
children included, even when started in the background with SIGINT and SIGTERM ignored."""

from __future__ import annotations

import json
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
import yaml

from alphaplus_mlops.distributed.local_cluster import alive
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops_tests.conftest import REPO_ROOT, dagster_deployment

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


# What the webserver knows of the code location and of the daemon's heartbeats.
DEPLOYMENT_HEALTH = """
{
  workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } }
  } } }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


def deployment_health(web_port: int) -> tuple[dict[str, str], dict[str, bool]]:
    """Each code location's load state, and each required daemon's health, per the UI."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{web_port}/graphql",
        data=json.dumps({"query": DEPLOYMENT_HEALTH}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data = json.load(response)["data"]
    locations = {
        entry["name"]: entry["locationOrLoadError"]["__typename"]
        for entry in data["workspaceOrError"]["locationEntries"]
        if entry["locationOrLoadError"]
    }
    daemons = {
        status["daemonType"]: status["healthy"]
        for status in data["instance"]["daemonHealth"]["allDaemonStatuses"]
        if status["required"]
    }
    return locations, daemons


def compose_command(service: str, replacements: dict[str, str]) -> list[str]:
    """A service's command in deploy/compose.yaml, with container addresses made local."""
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    return [replacements.get(word, word) for word in compose["services"][service]["command"]]


@pytest.mark.daemon
def test_production_processes_work_together_and_each_stops_on_sigterm(create_database, tmp_path):
    """The production layout of deploy/compose.yaml, as separate processes on this host: the
    code server, and the webserver and daemon loading it through deploy/workspace.yaml.
    The UI sees the code location loaded and the daemon's heartbeats; then SIGTERM to each
    main process (what tini passes on from `docker stop`) ends it and its children < 15 s."""
    url = create_database()
    migrate(url)
    grpc_port, web_port = free_port(), free_port()
    env, _home = dagster_deployment(
        url,
        tmp_path,
        ALPHAPLUS_CODE_SERVER_HOST="127.0.0.1",
        ALPHAPLUS_CODE_SERVER_PORT=str(grpc_port),
    )
    # The compose `migrate` service's second step: Dagster's tables, before anything uses them.
    subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    local = {
        "0.0.0.0": "127.0.0.1",
        "4000": str(grpc_port),
        "3000": str(web_port),
        "/opt/alphaplus/deploy/workspace.yaml": str(REPO_ROOT / "deploy" / "workspace.yaml"),
    }
    processes = {}
    try:
        for service in ("codeserver", "webserver", "daemon"):
            command = compose_command(service, local)
            processes[service] = subprocess.Popen(
                [str(BIN / command[0]), *command[1:]],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_for_http(f"http://127.0.0.1:{web_port}/server_info", processes["webserver"])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for name, process in processes.items():
                assert process.poll() is None, f"{name} exited ({process.returncode})"
            locations, daemons = deployment_health(web_port)
            if (
                locations.get("alphaplus_mlops") == "RepositoryLocation"
                and daemons
                and all(daemons.values())
            ):
                break
            time.sleep(2)
        else:
            raise AssertionError(f"not ready: locations {locations}, daemons {daemons}")

        trees = {name: tree(process.pid) for name, process in processes.items()}
        for name, process in processes.items():
            took = stop_and_time(process, trees[name])
            assert not [pid for pid in trees[name] if alive(pid)], f"{name} left processes"
            assert took < 15, (name, took)
            print(f"{name}: {len(trees[name])} processes, gone {took:.1f} s after SIGTERM")
    finally:
        for process in processes.values():
            if process.poll() is None:
                for pid in tree(process.pid):
                    os.kill(pid, signal.SIGKILL)
