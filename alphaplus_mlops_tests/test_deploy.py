"""deploy/: what can be checked without a Docker engine or a cluster. The compose file and the
Helm values parse; every command they run is one the installed CLIs accept; every project
variable they set is a documented setting; the Helm values restate dagster.yaml's caps and
watchdogs exactly; the Dockerfile installs as CI does and copies files that exist.
(test_processes.py runs compose's code server, webserver and daemon as processes here.)"""

from __future__ import annotations

import json
import re
import shlex

import click
import pytest
import yaml
from click.testing import CliRunner
from dagster._cli import cli as dagster_cli
from dagster._daemon.cli import cli as dagster_daemon_cli
from dagster_webserver.cli import cli as dagster_webserver_cli

from alphaplus_mlops import versioning
from alphaplus_mlops.app.cli import main as alphaplus_cli
from alphaplus_mlops.defs import build_executor
from alphaplus_mlops.defs.jobs import train_model_job
from alphaplus_mlops.distributed.celery_config import executor_config
from alphaplus_mlops.settings import Settings
from alphaplus_mlops_tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
CLIS: dict[str, click.Command] = {
    "alphaplus-mlops": alphaplus_cli,
    "dagster": dagster_cli,
    "dagster-webserver": dagster_webserver_cli,
    "dagster-daemon": dagster_daemon_cli,
}
IMAGE_SERVICES = ("migrate", "codeserver", "webserver", "daemon", "worker", "serve")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def instance() -> dict:
    return yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())


def command_lines(command: list[str]) -> list[list[str]]:
    """The program invocations of a compose command (a `sh -c "a && b"` holds several)."""
    if command[:2] == ["/bin/sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def accepted(argv: list[str]) -> tuple[bool, str]:
    """Whether the installed CLI takes these words: with --help appended, an unknown verb or
    option still fails (exit 2) while nothing runs."""
    program, *words = argv
    result = CliRunner().invoke(CLIS[program], [*words, "--help"])
    return result.exit_code == 0, result.output


def documented_variables() -> set[str]:
    """The variables named in the first column of the README's settings table."""
    readme = (REPO_ROOT / "README.md").read_text()
    first_cells = re.findall(r"^\| (`ALPHAPLUS_[^|]+)\|", readme, flags=re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"ALPHAPLUS_[A-Z_]+", cell)}


def test_compose_runs_every_process_of_the_production_layout_from_the_image():
    services = compose()["services"]
    assert {"postgres", "rabbitmq", "minio", *IMAGE_SERVICES} <= set(services)
    for name in IMAGE_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        # `docker compose stop` waits this long after SIGTERM before it kills.
        assert service["stop_grace_period"] == "15s", name
    assert services["worker"]["deploy"]["replicas"] >= 2


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_every_compose_command_is_accepted_by_the_installed_cli(service):
    for argv in command_lines(compose()["services"][service]["command"]):
        ok, output = accepted(argv)
        assert ok, f"{service}: {shlex.join(argv)} refused:\n{output}"


def test_a_wrong_option_would_be_caught():
    ok, output = accepted(["alphaplus-mlops", "worker", "--queues", "training"])
    assert not ok and "No such option" in output


def test_the_services_share_one_environment_of_documented_settings():
    services = compose()["services"]
    environments = [services[name]["environment"] for name in IMAGE_SERVICES]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert env["ALPHAPLUS_EXECUTOR"] == "celery"
    assert env["ALPHAPLUS_ARTIFACT_URL"].startswith("s3://")
    # Passwords come from the .env file compose reads, never from the compose file itself.
    for name in ("ALPHAPLUS_DATABASE_URL", "ALPHAPLUS_CELERY_BROKER_URL"):
        assert re.search(r":\$\{[A-Z_]+(:\?[^}]*)?\}@", env[name]), name
    project = {name for name in env if name.startswith("ALPHAPLUS_")}
    helm = {
        item["name"]
        for item in helm_values()["dagster-user-deployments"]["deployments"][0]["env"]
        if item["name"].startswith("ALPHAPLUS_")
    }
    undocumented = (project | helm) - documented_variables()
    assert not undocumented, f"set in deploy/ but not in the README's settings: {undocumented}"


def test_the_production_workspace_names_the_code_server_by_environment():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == {"env": "ALPHAPLUS_CODE_SERVER_HOST"}
    assert server["port"] == {"env": "ALPHAPLUS_CODE_SERVER_PORT"}
    assert (
        server["location_name"]
        == yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"][0][
            "python_module"
        ]["location_name"]
    )


def test_helm_values_restate_dagster_yaml_caps_and_watchdogs():
    values, ours = helm_values(), instance()
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == ours["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == ours["concurrency"]["runs"]["tag_concurrency_limits"]
    assert (
        values["concurrency"]["pools"]["defaultLimit"]
        == (ours["concurrency"]["pools"]["default_limit"])
    )
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    for key, value in ours["run_monitoring"].items():
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
        assert monitoring[camel] == value, key
    retries = values["dagsterDaemon"]["runRetries"]
    assert retries["maxRetries"] == ours["run_retries"]["max_retries"]
    assert retries["retryOnAssetOrOpFailure"] is ours["run_retries"]["retry_on_asset_or_op_failure"]


def test_helm_values_launch_a_pod_per_run_on_the_external_database():
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "alphaplus_mlops.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # Credentials only through a Kubernetes secret, never as a value here.
    assert deployment["envSecrets"]
    for item in deployment["env"]:
        assert not re.search(r"://[^/@]*:[^/@]*@", item["value"]), item["name"]


def test_training_runs_ask_kubernetes_for_their_resources():
    config = json.loads(train_model_job.tags["dagster-k8s/config"])
    resources = config["container_config"]["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_the_dockerfile_installs_as_ci_does_and_copies_files_that_exist():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    ci_install = re.search(r"pip install --quiet (-e \S+)", makefile).group(1)
    assert ci_install == "-e '.[dev]'"
    assert "python -m pip install -e .\n" in dockerfile  # the same, without the dev extras
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE):
        *sources, _target = line.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile
    assert "ENV ALPHAPLUS_CODE_VERSION=" in dockerfile


def test_an_image_declares_its_code_version(monkeypatch):
    """An image has no git checkout: ALPHAPLUS_CODE_VERSION (a build argument) is what every
    model trained in it records."""
    versioning.code_version.cache_clear()
    monkeypatch.setenv("ALPHAPLUS_CODE_VERSION", "0.1.0+gabc123def456")
    try:
        assert versioning.code_version() == "0.1.0+gabc123def456"
    finally:
        versioning.code_version.cache_clear()
    monkeypatch.delenv("ALPHAPLUS_CODE_VERSION")
    assert versioning.code_version().startswith("0.1.0")
    versioning.code_version.cache_clear()


def test_celery_urls_reach_the_definitions_as_environment_references_only(monkeypatch):
    """compose passes the broker's password in the environment; the jobs' executor config
    (what the UI shows of a job) names the variables, never their values."""
    monkeypatch.setenv("ALPHAPLUS_EXECUTOR", "celery")
    monkeypatch.setenv("ALPHAPLUS_CELERY_BROKER_URL", "amqp://desk:broker-secret@mq:5672//")
    monkeypatch.delenv("ALPHAPLUS_CELERY_BACKEND_URL", raising=False)
    assert executor_config(Settings.from_env())["backend"] == "rpc://"
    monkeypatch.setenv("ALPHAPLUS_CELERY_BACKEND_URL", "redis://:backend-secret@cache:6379/1")
    config = executor_config(Settings.from_env())
    assert "secret" not in json.dumps(config)
    assert config["broker"] == {"env": "ALPHAPLUS_CELERY_BROKER_URL"}
    assert config["backend"] == {"env": "ALPHAPLUS_CELERY_BACKEND_URL"}
    assert build_executor(Settings.from_env()).name == "alphaplus_celery"
