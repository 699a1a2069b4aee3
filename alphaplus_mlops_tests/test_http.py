"""The signal service over HTTP: signals for stored bars, batch scoring, what serves and
why, health and metrics; every signal logged; malformed requests answered with a 4xx
that names the problem.

A real lightgbm champion trained by the train_model job on a real PostgreSQL, served by
the real SignalService and PredictionLog behind FastAPI's TestClient.
"""

import socket
import time

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.serving.features import FeatureCache, serving_features
from alphaplus_mlops.serving.http import create_app
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.serving.prediction_log import PredictionLog
from alphaplus_mlops.serving.service import SignalService

from .conftest import rows, simulated_project

SYMBOLS = ["HTA", "HTB", "HTC"]


@pytest.fixture(scope="module")
def served(create_database, tmp_path_factory):
    home = tmp_path_factory.mktemp("http")
    project = simulated_project(create_database, home, SYMBOLS, pool_size=6)
    url, db, store = project.url, project.db, project.store
    champion = project.train("lightgbm", SYMBOLS, rounds=40)
    assert champion["status"] == "champion"
    with (
        SignalService(db, store, poll_seconds=1, feature_cache=FeatureCache()) as service,
        PredictionLog(db, home / "spool", flush_seconds=0.05) as prediction_log,
    ):
        client = TestClient(create_app(service, db, prediction_log, max_body_bytes=20_000))
        yield {
            "url": url,
            "db": db,
            "store": store,
            "champion": champion,
            "client": client,
            "log": prediction_log,
            "home": home,
            "service": service,
        }
    db.close()


def logged(url: str, request_symbols: list[str]) -> list[dict]:
    return rows(
        url,
        "SELECT * FROM model_predictions WHERE symbol = ANY(%s) ORDER BY symbol",
        (request_symbols,),
    )


def test_signals_are_the_champions_answer_on_the_training_features_and_are_logged(served):
    client, champion = served["client"], served["champion"]
    response = client.post("/v1/signals", json={"symbols": ["HTB", "HTA"]})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [(a["family"], a["role"], a["symbol"]) for a in answers] == [
        ("lightgbm", "champion", "HTB"),
        ("lightgbm", "champion", "HTA"),
    ]
    features = serving_features(
        served["db"],
        ["HTB", "HTA"],
        feature_names=champion["feature_names"],
        feature_version="features-v1",
    )
    expected = OnnxModel(served["store"].path_of(champion["onnx_uri"])).predict_proba(features.x)
    assert [a["probability"] for a in answers] == pytest.approx(expected.tolist(), abs=0)
    assert all(a["version"] == champion["version"] for a in answers)
    assert [a["signal"] for a in answers] == [1 if p > 0.5 else -1 for p in expected]
    assert answers[0]["bar_ts"] == features.bar_ts[0].isoformat()

    deadline = time.monotonic() + 10
    while len(logged(served["url"], ["HTA", "HTB"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    log_rows = logged(served["url"], ["HTA", "HTB"])
    assert [(r["symbol"], r["role"], r["family"]) for r in log_rows] == [
        ("HTA", "champion", "lightgbm"),
        ("HTB", "champion", "lightgbm"),
    ]
    assert {r["model_version_id"] for r in log_rows} == {champion["id"]}
    assert len({r["request_id"] for r in log_rows}) == 1
    assert log_rows[1]["probability"] == pytest.approx(answers[0]["probability"], abs=0)


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/signals", {}, 422, "symbols: Field required"),
        ("/v1/signals", {"symbols": []}, 422, "symbols: List should have at least 1 item"),
        ("/v1/signals", {"symbols": ["HTA"], "colour": "red"}, 422, "colour: Extra inputs"),
        ("/v1/signals", {"symbols": ["NOPE", "HTA"]}, 422, "unknown symbol(s): NOPE"),
        ("/v1/signals", {"symbols": ["HTA"], "as_of": "1990-01-01"}, 422, "no bar at or before"),
        ("/v1/signals", {"symbols": ["HTA"], "as_of": "soon"}, 422, "as_of: Input should be"),
        ("/v1/signals", {"family": "sklearn", "symbols": ["HTA"]}, 404, "no champion serves"),
        ("/v1/predict", {"family": "lightgbm", "rows": [[1.0, 2.0]]}, 422, "features"),
        ("/v1/predict", {"family": "lightgbm", "rows": []}, 422, "no rows"),
        ("/v1/predict", {"family": "lightgbm"}, 422, "rows: Field required"),
    ],
)
def test_malformed_requests_get_a_4xx_naming_the_problem(served, path, body, status, says):
    response = served["client"].post(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    big = {"symbols": ["HTA"] * 5000}
    response = served["client"].post("/v1/signals", json=big)
    assert response.status_code == 413
    assert "over 20000 bytes" in response.json()["error"]
    not_json = served["client"].post(
        "/v1/signals", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


def test_batch_scoring_answers_every_row_with_the_champion(served):
    champion = served["champion"]
    width = len(champion["feature_names"])
    x = np.random.default_rng(1).normal(size=(5, width)).astype(np.float32)
    response = served["client"].post("/v1/predict", json={"family": "lightgbm", "rows": x.tolist()})
    assert response.status_code == 200, response.text
    (answer,) = response.json()["answers"]
    expected = OnnxModel(served["store"].path_of(champion["onnx_uri"])).predict_proba(x)
    assert (answer["role"], answer["version"]) == ("champion", champion["version"])
    assert answer["probability"] == pytest.approx(expected.tolist(), abs=0)


def test_models_health_and_metrics_say_what_serves_and_how_it_goes(served):
    client, champion = served["client"], served["champion"]
    client.post("/v1/signals", json={"symbols": ["HTC"]})
    models = client.get("/v1/models").json()
    assert models["lightgbm"]["champion"]["version"] == champion["version"]
    assert models["lightgbm"]["champion_since"]["action"] == "promote"
    assert "automated decision" in models["lightgbm"]["champion_since"]["reason"]
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["families"] == ["lightgbm"]
    text = client.get("/metrics").text
    assert 'alphaplus_answers_total{family="lightgbm",role="champion"}' in text
    # The app computes features in the service's cache, the one told of bar changes.
    assert "HTC" in served["service"].feature_cache
    assert "alphaplus_feature_cache_notified 1" in text
    assert 'alphaplus_http_requests_total{path="/v1/signals",status="200"}' in text
    assert "alphaplus_prediction_log_queue_depth" in text


def test_serve_refuses_a_taken_port_with_a_message(served):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["serve", "--port", str(port)],
            env={"ALPHAPLUS_DATABASE_URL": served["url"], "ALPHAPLUS_HOME": str(served["home"])},
        )
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.output
