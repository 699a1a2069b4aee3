"""The report's and the dashboard's pure parts: curves, the drift matrix, the pages."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.reports.dashboard import render_dashboard
from alphaplus_mlops.reports.ops_report import (
    FamilySection,
    ReportData,
    drift_matrix,
    equity_curves,
    render_html,
    render_markdown,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_equity_curves_cumulate_each_version_and_role_on_the_union_of_bars():
    equity = pd.DataFrame(
        {
            "family": "f",
            "version": [1, 1, 2, 1],
            "role": ["champion", "champion", "challenger", "champion"],
            "bar_ts": [1, 2, 2, 3],
            "net_return": [0.01, -0.02, 0.05, 0.03],
        }
    )
    curves = equity_curves(equity)
    assert list(curves.columns) == ["v1 champion", "v2 challenger"]
    assert curves["v1 champion"].tolist() == pytest.approx([0.01, -0.01, 0.02])
    assert np.isnan(curves.loc[1, "v2 challenger"])  # it did not answer bar 1
    assert curves.loc[2, "v2 challenger"] == pytest.approx(0.05)
    assert np.isnan(curves.loc[3, "v2 challenger"])  # nor bar 3: a gap, not a flat line
    assert equity_curves(equity.iloc[:0]).empty


def test_the_drift_matrix_holds_each_features_severity_per_window():
    checks = [
        {
            "checked_at": NOW,
            "current_window": {"end": "2016-01-29T00:00:00+00:00"},
            "feature_scores": {
                "a": {"method": "ks", "score": 0.0025, "threshold": 0.05},
                "b": {"method": "wasserstein", "score": 0.05, "threshold": 0.1},
                "broken": {"method": "ks", "score": None, "threshold": 0.05},
            },
        },
        {"checked_at": NOW, "current_window": {}, "feature_scores": {}},
    ]
    matrix = drift_matrix(checks)
    assert list(matrix.columns) == ["2016-01-29", "2026-11-28"]
    assert matrix.loc["a", "2016-01-29"] == pytest.approx(2.0)  # log p / log threshold
    assert matrix.loc["b", "2016-01-29"] == pytest.approx(0.5)  # distance / threshold
    assert "broken" not in matrix.index


def report(alerts=()) -> ReportData:
    section = FamilySection(
        family="lightgbm",
        champion=3,
        challenger=None,
        equity=pd.DataFrame(columns=["family", "version", "role", "bar_ts", "net_return"]),
        metrics=[{"version": 3, "role": "champion", "live_bars": 63, "live_net_sharpe": -1.5}],
        drift_checks=[],
        timeline=[{"at": NOW, "kind": "rollback", "version": 3, "what": "auto-rollback: x|y"}],
    )
    return ReportData(NOW, NOW - timedelta(days=30), [section], list(alerts))


def test_the_pages_say_what_is_missing_and_escape_what_they_show():
    alert = {"rule": "r", "severity": "critical", "subject": "<s>", "occurrences": 2,
             "last_seen_at": NOW, "message": "m"}  # fmt: skip
    page = render_html(report([alert]))
    assert "No realized live outcome in the period." in page
    assert "No drift check in the period." in page
    assert "&lt;s&gt;" in page and "<s>" not in page
    assert "<td>-1.50</td>" in page and "<td>63</td>" in page
    text = render_markdown(report(), "/tmp/r.html")
    assert "Plots: the HTML report, /tmp/r.html." in text
    assert "auto-rollback: x\\|y" in text  # a pipe would split the Markdown cell
    assert "_No open alert._" in text


def test_the_dashboard_marks_what_needs_a_look():
    assert "No snapshot yet" in render_dashboard(None, NOW)
    snapshot = {
        "snapshot_at": NOW - timedelta(seconds=40),
        "summary": {"families": 1, "with_champion": 1, "open_alerts": 2, "drifted": 0},
        "fleet": [
            {
                "family": "xgboost",
                "champion": 4,
                "champion_age_days": 2.4,
                "last_change": "rollback by auto-rollback",
                "live_window": "63b",
                "live_net_sharpe": -0.5,
                "drift": "within yardstick",
                "open_alerts": 2,
                "last_retrain": None,
                "experiment": "none",
            }
        ],
    }
    page = render_dashboard(snapshot, NOW)
    assert "(40 s ago)" in page and "<td class=''>v4</td>" in page
    assert "<td class='bad'>-0.50</td>" in page and "<td class='bad'>2</td>" in page
    assert "<td class=''>2.4</td>" in page
    assert "<td class='bad'>rollback by auto-rollback</td>" in page
    assert "<svg" in page
