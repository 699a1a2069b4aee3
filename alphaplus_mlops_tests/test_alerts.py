"""Alerts: one row per rule and subject while unresolved, a lifecycle a person can follow,
and deliveries to a webhook that retry with backoff without blocking whoever raised them."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.alerting.delivery import deliver_due
from alphaplus_mlops.alerting.rules import check_training_memory
from alphaplus_mlops.app.cli import main
from alphaplus_mlops.defs.alert_sensors import (
    alert_delivery_sensor,
    pipeline_failure_sensor,
    pipeline_recovery_sensor,
    stale_data_sensor,
)
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.store.alerts import (
    acknowledge_alert,
    alert_deliveries,
    alert_state,
    fire_alert,
    list_alerts,
    resolve_alert,
    resolve_cleared,
)
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops_tests.conftest import execute


@pytest.fixture
def db(empty_database_url):
    migrate(empty_database_url)
    with Database(empty_database_url) as database:
        yield database


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it is sent, answering with the
    statuses queued in ``answers`` (then 200)."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(
                    {"body": json.loads(body), "authorization": self.headers["authorization"]}
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def add_webhook(db, url, **config):
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO alert_channels (name, kind, config) VALUES ('desk', 'webhook', %s)",
            (json.dumps({"url": url, **config}),),
        )


def test_a_repeat_updates_the_unresolved_alert_and_a_cleared_condition_resolves_it(db):
    first = fire_alert(db, "pipeline_failure", "train_model failed", {}, subject="job:a")
    assert (first.new, first.state, first.occurrences) == (True, "open", 1)
    again = fire_alert(
        db, "pipeline_failure", "train_model failed again", {"n": 2}, subject="job:a"
    )
    assert (again.id, again.new, again.occurrences) == (first.id, False, 2)
    other = fire_alert(db, "pipeline_failure", "another job failed", {}, subject="job:b")
    assert other.new and other.id != first.id

    (row, _) = list_alerts(db, rule_name="pipeline_failure")
    assert row["message"] == "train_model failed again"  # the latest
    assert row["details"] == {"n": 2}
    assert row["last_seen_at"] >= row["first_seen_at"]

    assert acknowledge_alert(db, first.id, "maria")
    (acked,) = list_alerts(db, state="acknowledged")
    assert acked["acknowledged_by"] == "maria"
    # Seen again while acknowledged: still the same row, still acknowledged.
    third = fire_alert(db, "pipeline_failure", "failed a third time", {}, subject="job:a")
    assert (third.id, third.state, third.occurrences) == (first.id, "acknowledged", 3)

    assert resolve_alert(db, "pipeline_failure", "job:a", "the job succeeded")
    assert not resolve_alert(db, "pipeline_failure", "job:a", "again")  # nothing unresolved
    assert alert_state(db, first.id) == "resolved"
    assert not acknowledge_alert(db, first.id, "maria")  # resolved alerts are not acknowledged
    # After resolution the next occurrence is a new alert.
    fourth = fire_alert(db, "pipeline_failure", "failed once more", {}, subject="job:a")
    assert fourth.new and fourth.id != first.id

    # An evaluator that checked every subject resolves the ones it no longer finds.
    assert resolve_cleared(db, "pipeline_failure", {"job:a"}, "checked") == 1
    assert alert_state(db, other.id) == "resolved"
    assert alert_state(db, fourth.id) == "open"


def test_the_database_keeps_one_unresolved_alert_per_rule_and_subject(db):
    fire_alert(db, "feature_drift", "drift", {}, subject="family:xgboost")
    with pytest.raises(Exception, match="alerts_unresolved_subject_idx"):
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO ml_ops_alerts (record_type, rule_id, name, category, severity,"
                " subject, state, fired_at, last_seen_at, occurrences) "
                "SELECT 'alert', id, name, category, severity, 'family:xgboost', 'open', now(),"
                " now(), 1 FROM ml_ops_alerts WHERE record_type = 'rule' AND name = 'feature_drift'"
            )


def test_bad_input_is_named(db):
    with pytest.raises(LookupError, match="no alert rule named 'nope'"):
        fire_alert(db, "nope", "x", {}, subject="s")
    with pytest.raises(ValueError, match="needs a subject"):
        fire_alert(db, "pipeline_failure", "x", {})
    with pytest.raises(ValueError, match="unknown alert state 'closed'"):
        list_alerts(db, state="closed")


def test_a_webhook_receives_raised_and_resolved_alerts_with_the_token_from_the_env(
    db, receiver, monkeypatch
):
    monkeypatch.setenv("DESK_HOOK_TOKEN", "s3cret")
    add_webhook(db, receiver.url, token_env="DESK_HOOK_TOKEN")
    alert = fire_alert(db, "system_resources", "a training run used 9 GiB", {}, subject="lgb")
    fire_alert(db, "system_resources", "again", {}, subject="lgb")  # a repeat: no delivery
    # The log channel is delivered when the alert is raised; the webhook waits for a drain.
    assert {(d["channel"], d["status"]) for d in alert_deliveries(db, alert.id)} == {
        ("log", "delivered"),
        ("desk", "pending"),
    }
    assert receiver.received == []

    report = deliver_due(db, budget_seconds=5)
    assert (report.delivered, report.retrying, report.failed) == (1, 0, 0)
    (sent,) = receiver.received
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["body"]["event"] == "raised"
    assert sent["body"]["alert_id"] == alert.id
    assert (sent["body"]["rule"], sent["body"]["severity"]) == ("system_resources", "warning")
    assert sent["body"]["subject"] == "lgb"

    resolve_alert(db, "system_resources", "lgb", "the next run stayed under the limit")
    deliver_due(db, budget_seconds=5)
    assert [r["body"]["event"] for r in receiver.received] == ["raised", "resolved"]
    assert receiver.received[1]["body"]["resolution"] == "the next run stayed under the limit"
    assert deliver_due(db, budget_seconds=5).delivered == 0  # each delivered once


def test_a_failing_webhook_is_retried_with_backoff_then_given_up_and_recorded(db, receiver):
    add_webhook(db, receiver.url, max_attempts=3, backoff_seconds=60)
    receiver.answers = [503, 503, 503]
    alert = fire_alert(db, "pipeline_failure", "failed", {}, subject="job:x")

    report = deliver_due(db, budget_seconds=5)
    assert (report.delivered, report.retrying) == (0, 1)
    assert "HTTP 503" in report.errors[0]
    (pending,) = [d for d in alert_deliveries(db, alert.id) if d["channel"] == "desk"]
    assert (pending["status"], pending["attempts"]) == ("pending", 1)
    # Not due again before its backoff has passed.
    assert deliver_due(db, budget_seconds=5).retrying == 0
    assert len(receiver.received) == 1

    for attempt in (2, 3):
        execute(db.url, "UPDATE alert_deliveries SET next_attempt_at = now()")
        deliver_due(db, budget_seconds=5)
        (row,) = [d for d in alert_deliveries(db, alert.id) if d["channel"] == "desk"]
        assert row["attempts"] == attempt
    assert (row["status"], row["last_error"]) == ("failed", f"HTTP 503 from {receiver.url}")
    execute(db.url, "UPDATE alert_deliveries SET next_attempt_at = now()")
    assert deliver_due(db, budget_seconds=5).errors == []  # given up: not tried again
    assert len(receiver.received) == 3


def test_an_unreachable_webhook_is_recorded_and_never_raises(db):
    add_webhook(db, "http://127.0.0.1:9/nothing-listens", timeout_seconds=1)
    alert = fire_alert(db, "pipeline_failure", "failed", {}, subject="job:y")
    report = deliver_due(db, budget_seconds=5)
    assert report.retrying == 1 and "unreachable" in report.errors[0]
    (row,) = [d for d in alert_deliveries(db, alert.id) if d["channel"] == "desk"]
    assert "unreachable" in row["last_error"]


def test_a_disabled_channel_or_one_above_the_severity_gets_nothing(db, receiver):
    add_webhook(db, receiver.url, min_severity="critical")
    warning = fire_alert(db, "feature_drift", "drift", {}, subject="family:catboost")
    critical = fire_alert(db, "pipeline_failure", "failed", {}, subject="job:z")
    assert [d["channel"] for d in alert_deliveries(db, warning.id)] == ["log"]
    assert sorted(d["channel"] for d in alert_deliveries(db, critical.id)) == ["desk", "log"]


# Run outcomes, through Dagster ---------------------------------------------------------------


@dg.op
def load_prices(context):
    if context.op_config["fail"]:
        raise RuntimeError("the vendor file is empty")


@dg.job
def nightly_import():
    load_prices()


def finished_run(instance, fail: bool, partition: str | None = None):
    result = nightly_import.execute_in_process(
        run_config={"ops": {"load_prices": {"config": {"fail": fail}}}},
        instance=instance,
        raise_on_error=False,
        tags={"dagster/partition": partition} if partition else None,
    )
    kind = dg.DagsterEventType.RUN_FAILURE if fail else dg.DagsterEventType.RUN_SUCCESS
    (event,) = [e for e in result.all_events if e.event_type == kind]
    return result.dagster_run, event


def run_sensor(sensor, instance, run, event, db):
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"postgres": PostgresResource(database_url=db.url)},
    ) as context:
        sensor(context.for_run_failure() if sensor is pipeline_failure_sensor else context)


def test_a_failed_run_raises_one_alert_per_job_and_partition_and_a_success_resolves_it(db):
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        run, event = finished_run(instance, fail=True, partition="catboost")
        run_sensor(pipeline_failure_sensor, instance, run, event, db)
    (alert,) = list_alerts(db, rule_name="pipeline_failure")
    assert alert["subject"] == "job nightly_import [catboost]"
    assert alert["occurrences"] == 2
    assert alert["message"] == (
        f"nightly_import run {run.run_id[:8]} for catboost failed: "
        "step load_prices: RuntimeError: the vendor file is empty"
    )
    assert alert["details"]["run_id"] == run.run_id
    assert alert["severity"] == "critical"

    # Another partition's success does not clear it; this partition's does.
    other, event = finished_run(instance, fail=False, partition="xgboost")
    run_sensor(pipeline_recovery_sensor, instance, other, event, db)
    assert alert_state(db, alert["id"]) == "open"
    ok, event = finished_run(instance, fail=False, partition="catboost")
    run_sensor(pipeline_recovery_sensor, instance, ok, event, db)
    assert alert_state(db, alert["id"]) == "resolved"


def test_a_job_the_rule_does_not_watch_raises_nothing(db):
    execute(
        db.url,
        'UPDATE ml_ops_alerts SET condition = \'{"jobs": ["train_model"]}\' '
        "WHERE record_type = 'rule' AND name = 'pipeline_failure'",
    )
    instance = dg.DagsterInstance.ephemeral()
    run, event = finished_run(instance, fail=True)
    run_sensor(pipeline_failure_sensor, instance, run, event, db)
    assert list_alerts(db, rule_name="pipeline_failure") == []


def test_the_delivery_sensor_delivers_and_skips_with_a_reason_when_the_database_is_down(
    db, receiver
):
    add_webhook(db, receiver.url)
    fire_alert(db, "pipeline_failure", "failed", {}, subject="job:q")
    with dg.build_sensor_context(
        resources={"postgres": PostgresResource(database_url=db.url)}
    ) as context:
        skip = alert_delivery_sensor(context)
    assert "1 delivered" in skip.skip_message
    assert len(receiver.received) == 1

    nowhere = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    with dg.build_sensor_context(
        resources={"postgres": PostgresResource(database_url=nowhere)}
    ) as down:
        assert "database unavailable" in alert_delivery_sensor(down).skip_message


def test_a_training_run_over_the_memory_limit_raises_system_resources_and_one_under_resolves(
    db,
):
    execute(
        db.url,
        "UPDATE ml_ops_alerts SET condition = jsonb_set(condition, '{threshold}', '1000000') "
        "WHERE record_type = 'rule' AND name = 'system_resources'",
    )
    fired = check_training_memory(db, family="lightgbm", run_id="run-aaaaaaaa", peak_rss=3 * 2**20)
    assert fired.new and fired.severity == "warning"
    (alert,) = list_alerts(db, rule_name="system_resources")
    assert alert["subject"] == "training lightgbm"
    assert "peaked at 0.00 GiB (peak_rss_bytes > 1e+06 bytes)" in alert["message"]
    assert check_training_memory(db, family="lightgbm", run_id="run-b", peak_rss=500_000) is None
    assert alert_state(db, alert["id"]) == "resolved"


def test_the_cli_lists_alerts_by_state_and_acknowledges_one(db, tmp_path):
    env = {"ALPHAPLUS_DATABASE_URL": db.url, "ALPHAPLUS_HOME": str(tmp_path)}
    cli = CliRunner()
    assert cli.invoke(main, ["alerts"], env=env).output == "no open alerts\n"
    alert = fire_alert(db, "feature_drift", "psi 0.4 on rsi_14", {}, subject="family:xgboost")
    fire_alert(db, "feature_drift", "psi 0.5 on rsi_14", {}, subject="family:xgboost")

    listed = cli.invoke(main, ["alerts"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"{alert.id}  open" in listed.output
    assert "feature_drift" in listed.output and "family:xgboost" in listed.output
    assert "seen 2x" in listed.output and "psi 0.5 on rsi_14" in listed.output

    acked = cli.invoke(main, ["alerts", "ack", alert.id, "--by", "maria"], env=env)
    assert acked.exit_code == 0 and f"alert {alert.id} acknowledged by maria" in acked.output
    assert cli.invoke(main, ["alerts"], env=env).output == "no open alerts\n"
    shown = cli.invoke(main, ["alerts", "--state", "acknowledged"], env=env).output
    assert "acknowledged by maria" in shown

    again = cli.invoke(main, ["alerts", "ack", alert.id, "--by", "maria"], env=env)
    assert again.exit_code == 1 and "is acknowledged, not open" in again.output
    unknown = cli.invoke(main, ["alerts", "ack", str(uuid.uuid4())], env=env)
    assert unknown.exit_code == 1 and "no alert" in unknown.output
    malformed = cli.invoke(main, ["alerts", "ack", "42"], env=env)
    assert malformed.exit_code == 2 and "'42' is not an alert id" in malformed.output
    bad_state = cli.invoke(main, ["alerts", "--state", "closed"], env=env)
    assert bad_state.exit_code == 2


def add_daily_bars(db, symbol, first, days):
    execute(
        db.url,
        "INSERT INTO market_bars (symbol, ts, open, high, low, close, volume, source) "
        "SELECT %s, d, 10, 11, 9, 10, 100, 'test' "
        "FROM generate_series(%s::timestamptz, %s::timestamptz + %s * interval '1 day', "
        "'1 day') AS d "
        "WHERE extract(isodow FROM d) < 6",  # trading days only: weekends are no gap
        (symbol, first, first, days - 1),
    )


def test_the_stale_data_sensor_alerts_on_a_symbol_that_stopped_and_resolves_when_it_resumes(
    db,
):
    add_daily_bars(db, "AAA", "2016-01-04 21:00+00", 60)
    add_daily_bars(db, "BBB", "2016-01-04 21:00+00", 50)  # stopped 10 days earlier
    resources = {"postgres": PostgresResource(database_url=db.url)}
    with dg.build_sensor_context(resources=resources) as context:
        assert stale_data_sensor(context).skip_message == "1 stale, 0 resolved"
    (alert,) = list_alerts(db, "open", "stale_market_data")
    assert alert["subject"] == "symbol BBB"
    assert alert["details"]["bars_behind"] == 8  # 10 calendar days, 8 trading days
    assert alert["severity"] == "warning"

    add_daily_bars(db, "BBB", "2016-02-23 21:00+00", 11)  # caught up
    with dg.build_sensor_context(resources=resources) as context:
        assert stale_data_sensor(context).skip_message == "0 stale, 1 resolved"
    assert alert_state(db, alert["id"]) == "resolved"
