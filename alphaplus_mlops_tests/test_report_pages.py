"""ml_ops_report and ml_ops_dashboard on a real fleet: the report is stored, recorded and
shows each family's live equity, metrics, drift, timeline and the open alerts; the dashboard
snapshot is written by its asset and served at /dashboard; both pages load in a real
headless Chromium without console errors, and their plots are not blank."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import psycopg
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.defs.assets.reports import ml_ops_dashboard, ml_ops_report
from alphaplus_mlops.serving.http import create_app
from alphaplus_mlops.serving.service import SignalService
from alphaplus_mlops.store.alerts import fire_alert

from .conftest import execute, realize_outcomes, rows, simulated_project

SYMBOLS = ["RPA", "RPB", "RPC"]
FEATURES = {"ret_1": ("ks", 0.2, 0.05), "vol_ratio_21_63": ("wasserstein", 0.35, 0.1)}


@pytest.fixture(scope="module")
def fleet(create_database, tmp_path_factory):
    home = tmp_path_factory.mktemp("reports")
    project = simulated_project(create_database, home, SYMBOLS, n_bars=700, seed=6)
    champion = project.train("lightgbm", SYMBOLS, rounds=20)
    challenger = project.train("lightgbm", SYMBOLS, rounds=30)
    assert champion["status"] == "champion"
    execute(
        project.url,
        "UPDATE model_versioning SET status = 'challenger' WHERE id = %s",
        (challenger["id"],),
    )
    realize(project.url, str(champion["id"]), "champion", 0.001)
    realize(project.url, str(challenger["id"]), "challenger", -0.0005)
    execute(
        project.url,
        "INSERT INTO model_drift_detection (family, model_version_id, method, threshold, "
        "drifted, feature_scores, current_window) VALUES ('lightgbm', %s, 'severity', 1.0, "
        "true, %s, %s)",
        (
            champion["id"],
            psycopg.types.json.Jsonb(
                {
                    name: {"method": m, "score": s, "threshold": t, "drifted": True}
                    for name, (m, s, t) in FEATURES.items()
                }
            ),
            psycopg.types.json.Jsonb({"end": "2016-01-29T00:00:00+00:00"}),
        ),
    )
    fire_alert(
        project.db,
        "pipeline_failure",
        "a <b>tagged</b> failure",
        {"job": "train_model"},
        subject="lightgbm job train_model",
    )
    yield {
        "project": project,
        "champion": champion,
        "challenger": challenger,
        "home": home,
        "cli_env": {"ALPHAPLUS_DATABASE_URL": project.url, "ALPHAPLUS_HOME": str(home)},
    }
    project.db.close()


def realize(url: str, version: str, role: str, mean: float, bars: int = 80) -> None:
    realize_outcomes(
        url, version, role, [mean] * bars, len(role), SYMBOLS, start="2016-01-04", noise=0.003
    )


def materialize(fleet, asset, **kwargs):
    return dg.materialize(
        [asset],
        resources=fleet["project"].resources,
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def test_the_report_is_stored_recorded_and_shows_every_family(fleet):
    url = fleet["project"].url
    result = materialize(fleet, ml_ops_report)
    (materialization,) = result.asset_materializations_for_node("ml_ops_report")
    meta = materialization.metadata
    html_path, md_path = Path(meta["html"].value), Path(meta["markdown"].value)
    recorded = rows(url, "SELECT format, path, period_start, period_end FROM ml_ops_reports")
    assert sorted(r["format"] for r in recorded) == ["html", "markdown"]
    assert len({(r["period_start"], r["period_end"]) for r in recorded}) == 1
    assert {Path(r["path"].removeprefix("file://")).name for r in recorded} == {
        html_path.name,
        md_path.name,
    }
    page = html_path.read_text()
    for family in ("catboost", "xgboost", "lightgbm"):
        assert f"<h2 id='{family}'>" in page
    assert page.count("<figure class='plot'><svg") == 2  # lightgbm's equity and heat map
    assert "Champion v1, challenger v2." in page
    assert "a &lt;b&gt;tagged&lt;/b&gt; failure" in page  # escaped, not markup
    assert "first model of its family" in page  # the deployment decision in the timeline
    text = md_path.read_text()
    assert "## Open alerts (1)" in text and "## lightgbm" in text
    assert "v1 champion +" in text and "v2 challenger -" in text  # final cumulative returns
    assert "at the latest drift check: vol_ratio_21_63." in text  # ks p 0.2 is within


def test_a_report_period_must_be_a_date(fleet):
    result = materialize(
        fleet,
        ml_ops_report,
        run_config={"ops": {"ml_ops_report": {"config": {"since": "last week"}}}},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "since: not an ISO date: 'last week'" in failure.event_specific_data.error.message


def test_the_cli_writes_the_same_report(fleet):
    found = CliRunner().invoke(main, ["report", "--since", "2000-01-01"], env=fleet["cli_env"])
    assert found.exit_code == 0, found.output
    html_line = next(line for line in found.output.splitlines() if line.startswith("html"))
    assert Path(html_line.split()[-1]).exists()
    assert "3 families, 1 open alerts" in found.output
    bad = CliRunner().invoke(main, ["report", "--since", "soon"], env=fleet["cli_env"])
    assert bad.exit_code == 2 and "not an ISO date: 'soon'" in bad.output


def test_the_dashboard_snapshot_is_served(fleet):
    project = fleet["project"]
    with SignalService(project.db, project.store, poll_seconds=60) as service:
        client = TestClient(create_app(service, project.db, None))
        assert "No snapshot yet" in client.get("/dashboard").text
        materialize(fleet, ml_ops_dashboard, partition_key="lightgbm")
        snapshot = client.get("/v1/dashboard").json()
        lightgbm = next(f for f in snapshot["fleet"] if f["family"] == "lightgbm")
        assert lightgbm["champion"] == 1 and lightgbm["drift"] == "drifted"
        assert lightgbm["open_alerts"] == 1
        assert lightgbm["last_change"].startswith("promote by ")
        assert lightgbm["experiment"] == "running, 0 bars"  # v2 shadows: no look yet
        assert lightgbm["live_net_sharpe"] is None  # no live window computed yet
        assert snapshot["summary"] == {
            "families": 3,
            "with_champion": 1,
            "open_alerts": 1,
            "drifted": 1,
        }
        page = client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<table id='fleet'>" in page.text and "<svg" in page.text


def chromium() -> str:
    """The browser the page tests use: ALPHAPLUS_CHROMIUM or Debian's chromium (`make
    install` installs it). Without one the tests skip, unless ALPHAPLUS_REQUIRE_BROWSER is
    set (CI sets it), when they fail."""
    path = os.environ.get("ALPHAPLUS_CHROMIUM") or shutil.which("chromium")
    if not path:
        message = "no Chromium: install Debian's chromium or set ALPHAPLUS_CHROMIUM"
        if os.environ.get("ALPHAPLUS_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def not_blank(png: bytes) -> float:
    """The share of the image's pixels that are not the background's colour."""
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(np.mean(np.abs(pixels - np.median(pixels)) > 16))


def test_both_pages_render_in_a_real_browser(fleet):
    from playwright.sync_api import sync_playwright

    browser_path = chromium()
    project = fleet["project"]
    materialize(fleet, ml_ops_dashboard, partition_key="lightgbm")
    report = materialize(fleet, ml_ops_report)
    report_path = report.asset_materializations_for_node("ml_ops_report")[0].metadata["html"]
    port = free_port()
    with SignalService(project.db, project.store, poll_seconds=60) as service:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service, project.db, None),
                host="127.0.0.1",
                port=port,
                log_level="error",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=browser_path, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                problems: list[str] = []
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
                )
                page.on("pageerror", lambda e: problems.append(str(e)))
                for address, plots in (
                    (f"http://127.0.0.1:{port}/dashboard", 1),
                    (Path(report_path.value).as_uri(), 2),
                ):
                    response = page.goto(address)
                    assert response is None or response.ok, address
                    figures = page.locator("figure.plot")
                    assert figures.count() == plots, address
                    for i in range(plots):
                        shot = figures.nth(i).screenshot()
                        assert not_blank(shot) > 0.02, f"{address}: plot {i} looks blank"
                assert "lightgbm v1" in page.goto(f"http://127.0.0.1:{port}/dashboard").text()
                browser.close()
                assert problems == []
        finally:
            server.should_exit = True
            thread.join(timeout=10)
