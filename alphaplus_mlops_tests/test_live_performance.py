"""prediction_outcomes and live_performance on a real PostgreSQL: a lightgbm version
trained by the train_model job, predictions logged for its stored bars, outcomes equal to
the training dataset's labels, the paper P&L by hand, windows on known data, status."""

import json
import math
import zlib

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.app.reporting import status_report
from alphaplus_mlops.core.backtest import median_bars_per_year
from alphaplus_mlops.defs.assets.monitoring import live_performance, prediction_outcomes
from alphaplus_mlops.modeling.model_files import load_dataset
from alphaplus_mlops.serving.prediction_log import PredictionRecord, write_predictions
from alphaplus_mlops.store.alerts import list_alerts
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import load_bars
from alphaplus_mlops.store.live import WINDOW_RECORD, realized_window, window_frame

from .conftest import execute, rows, simulated_project

SYMBOLS = ["LPA", "LPB", "LPC"]
LIVE_BARS = 90  # the last bars of each symbol get predictions
COST = 5 / 1e4  # the business_metrics gate row's default cost_bps


@pytest.fixture(scope="module")
def live(create_database, tmp_path_factory):
    home = tmp_path_factory.mktemp("live")
    project = simulated_project(create_database, home, SYMBOLS, n_bars=700, seed=11)
    url, db, settings, resources = project.url, project.db, project.settings, project.resources
    version = project.train("lightgbm", SYMBOLS, rounds=20)
    ref = rows(
        url, "SELECT * FROM training_data_management WHERE id = %s", (version["dataset_id"],)
    )
    dataset = load_dataset(LocalArtifactStore(settings.artifacts_dir), ref[0])
    yield {"url": url, "db": db, "version": version, "dataset": dataset, "resources": resources}
    db.close()


def probability(symbol: str, ts: pd.Timestamp, role: str) -> float:
    # Known, varied answers: a deterministic function of the bar.
    seed = zlib.crc32(f"{symbol}{role}".encode()) % 1000 + ts.dayofyear
    return float(0.2 + 0.6 * ((seed * 37) % 101) / 100)


def records(version: dict, bars: pd.DataFrame, role: str) -> list[PredictionRecord]:
    out = []
    for row in bars.itertuples():
        p = probability(row.symbol, row.ts, role)
        out.append(
            PredictionRecord(
                model_version_id=version["id"],
                family="lightgbm",
                role=role,
                symbol=row.symbol,
                bar_ts=row.ts.to_pydatetime(),
                probability=p,
                signal=1 if p > 0.5 else -1,
            )
        )
    return out


def run(asset, live, run_config=None):
    result = dg.materialize(
        [asset],
        partition_key="lightgbm",
        resources={"postgres": live["resources"]["postgres"]},
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
    )
    return result.asset_materializations_for_node(asset.op.name)[0].metadata


def logged(url: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows(url, "SELECT * FROM model_predictions ORDER BY role, symbol, bar_ts, predicted_at")
    )
    for column in ("bar_ts", "realized_t1"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def test_outcomes_are_the_datasets_labels_and_the_paper_pnl_net_of_costs(live):
    db, url, version = live["db"], live["url"], live["version"]
    bars = load_bars(db, SYMBOLS)
    recent = bars.groupby("symbol").tail(LIVE_BARS)
    first, second = recent.groupby("symbol").head(50), recent.groupby("symbol").tail(40)
    # Two batches realized in two runs: the second's first bar pays to change the position
    # the first batch left. Duplicated answers for some bars count once.
    write_predictions(
        db, records(version, first, "champion") + records(version, first, "challenger")
    )
    write_predictions(db, records(version, first.head(5), "champion"))
    meta = run(prediction_outcomes, live)
    assert meta["realized_champion"].value == 3 * 50 + 5
    assert meta["realized_challenger"].value == 3 * 50
    write_predictions(
        db, records(version, second, "champion") + records(version, second, "challenger")
    )
    horizon = live["dataset"].label_config.horizon
    meta = run(prediction_outcomes, live)
    assert meta["realized_champion"].value == 3 * (40 - horizon)
    assert meta["rows_realized"].value == 2 * 3 * (40 - horizon)
    assert run(prediction_outcomes, live)["rows_realized"].value == 0  # idempotent

    log = logged(url)
    realized = log[log["realized_at"].notna()]
    pending = log[log["realized_at"].isna()]
    # live_outcomes holds each realized (role, symbol, bar) once: its first answer.
    first = realized.drop_duplicates(["role", "symbol", "bar_ts"])
    outcomes = pd.DataFrame(
        rows(url, "SELECT * FROM live_outcomes ORDER BY role, symbol, bar_ts")
    ).assign(bar_ts=lambda f: pd.to_datetime(f["bar_ts"], utc=True))
    columns = ["role", "symbol", "bar_ts", "probability", "predicted_at", "realized_label"]
    columns += ["realized_return", "realized_net_return"]
    pd.testing.assert_frame_equal(
        outcomes[columns], first[columns].reset_index(drop=True), check_dtype=False
    )
    # realized_window reads them back packed: the same values, bit for bit, by bar and
    # symbol; a window of 3 bars holds each symbol's last 3 realized bars.
    window = realized_window(db, version["id"], "champion", 0)
    expected = first[first["role"] == "champion"].sort_values(["bar_ts", "symbol"])
    columns = ["bar_ts", "symbol", "probability", "signal", "realized_label"]
    pd.testing.assert_frame_equal(
        window[[*columns, "realized_net_return"]],
        expected[[*columns, "realized_net_return"]].reset_index(drop=True),
        check_dtype=False,
        check_exact=True,
    )
    last3 = realized_window(db, version["id"], "champion", 3)
    assert len(last3) == 3 * len(SYMBOLS)
    assert sorted(last3["bar_ts"].unique()) == sorted(expected["bar_ts"].unique())[-3:]
    # A window longer than the series holds every realized bar.
    longer = realized_window(db, version["id"], "champion", 10_000)
    pd.testing.assert_frame_equal(longer, window)
    # Each series' bar list is its distinct realized bars.
    bar_list = rows(url, "SELECT role, bar_ts FROM live_outcome_bars ORDER BY role, bar_ts")
    expected_bars = first[["role", "bar_ts"]].drop_duplicates().sort_values(["role", "bar_ts"])
    assert [(r["role"], pd.Timestamp(r["bar_ts"])) for r in bar_list] == list(
        expected_bars.itertuples(index=False, name=None)
    )
    # Exactly the last `horizon` bars of each symbol wait for their label interval to end.
    assert len(pending) == 2 * 3 * horizon
    assert pending["bar_ts"].min() > realized["bar_ts"].max() - pd.Timedelta(days=10)
    labels = live["dataset"].frame[["symbol", "ts", "label", "forward_return", "t1"]]
    joined = realized.merge(labels, left_on=["symbol", "bar_ts"], right_on=["symbol", "ts"])
    assert len(joined) == len(realized)
    assert (joined["realized_label"] == joined["label"]).all()
    assert joined["realized_return"].to_numpy() == pytest.approx(joined["forward_return"], abs=0)
    assert (joined["realized_t1"] == joined["t1"]).all()

    # Paper P&L by hand: s_t·(C[t+1]/C[t] − 1) − c·|s_t − s_{t−1}|, flat before the first.
    close = bars.set_index(["symbol", "ts"])["close"]
    for (role, symbol), series in realized.drop_duplicates(["role", "symbol", "bar_ts"]).groupby(
        ["role", "symbol"]
    ):
        closes = close.loc[symbol]
        ts = list(closes.index)
        previous = 0
        for row in series.itertuples():
            i = ts.index(row.bar_ts)
            expected = row.signal * (closes.iloc[i + 1] / closes.iloc[i] - 1)
            expected -= COST * abs(row.signal - previous)
            assert row.realized_net_return == pytest.approx(expected, abs=1e-14), (role, i)
            previous = row.signal

    # A late answer to an old, realized bar (a client asking as of it again, with the other
    # signal) is realized as that bar's first answer was: one position per bar, the first.
    # The bar keeps its live outcome and the bars after it keep theirs.
    old = realized[realized["role"] == "champion"].drop_duplicates(["symbol", "bar_ts"]).iloc[20]
    before = rows(url, "SELECT * FROM live_outcomes ORDER BY role, symbol, bar_ts")
    late = PredictionRecord(
        model_version_id=version["id"],
        family="lightgbm",
        role="champion",
        symbol=old.symbol,
        bar_ts=old.bar_ts.to_pydatetime(),
        probability=1 - old.probability,
        signal=-old.signal,
    )
    write_predictions(db, [late])
    assert run(prediction_outcomes, live)["rows_realized"].value == 1
    (answer,) = rows(
        url,
        "SELECT realized_label, realized_net_return FROM model_predictions WHERE id = %s",
        (late.id,),
    )
    assert answer == {
        "realized_label": old.realized_label,
        "realized_net_return": old.realized_net_return,
    }
    assert rows(url, "SELECT * FROM live_outcomes ORDER BY role, symbol, bar_ts") == before


def test_live_windows_and_status(live):
    db, url, version = live["db"], live["url"], live["version"]
    meta = run(
        live_performance, live, {"ops": {"live_performance": {"config": {"windows": [21, 63]}}}}
    )
    assert meta["series"].value == 2
    assert "| v1 | champion | 63b |" in meta["live_vs_offline"].value
    assert meta["live_equity"].value.startswith("![live equity](data:image/png;base64,")
    stored = rows(
        url,
        "SELECT role, window_label, window_start, window_end, n_predictions, metrics "
        "FROM real_time_model_performance ORDER BY role, window_label",
    )
    assert [(r["role"], r["window_label"]) for r in stored] == [
        ("challenger", "21b"),
        ("challenger", "63b"),
        ("champion", "21b"),
        ("champion", "63b"),
    ]
    log = logged(url)
    champion = log[(log["role"] == "champion") & log["realized_at"].notna()]
    champion = champion.drop_duplicates(["symbol", "bar_ts"])
    last = sorted(champion["bar_ts"].unique())[-21:]
    window = champion[champion["bar_ts"] >= last[0]]
    row = stored[2]
    assert (pd.Timestamp(row["window_start"]), pd.Timestamp(row["window_end"])) == (
        last[0],
        last[-1],
    )
    m = row["metrics"]
    assert row["n_predictions"] == m["n_predictions"] == 63 and m["n_bars"] == 21
    net = window.groupby("bar_ts")["realized_net_return"].mean().to_numpy()
    per_year = median_bars_per_year(load_bars(db, SYMBOLS))
    assert m["net_sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(per_year))
    held = window.groupby("bar_ts")["signal"].apply(lambda s: (s != 0).any()).to_numpy()
    assert m["hit_rate"] == pytest.approx((net[held] > 0).mean())
    y, p = window["realized_label"].to_numpy(), window["probability"].to_numpy()
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["complete"] is True

    # A second run over the same realized bars updates its rows instead of adding any.
    run(live_performance, live, {"ops": {"live_performance": {"config": {"windows": [21, 63]}}}})
    assert rows(url, "SELECT count(*) AS n FROM real_time_model_performance")[0]["n"] == 4

    report = status_report(db)
    assert f"live champion  v{version['version']} 63b (63 bars): hit " in report
    assert "| offline AUC 0." in report


def test_a_champion_whose_live_window_meets_the_decay_rule_is_alerted_until_it_clears(live):
    db, url, version = live["db"], live["url"], live["version"]
    config = {"ops": {"live_performance": {"config": {"windows": [21, 63]}}}}
    run(live_performance, live, config)
    (window,) = rows(
        url,
        "SELECT metrics FROM real_time_model_performance "
        "WHERE role = 'champion' AND window_label = '63b'",
    )
    sharpe = window["metrics"]["net_sharpe"]

    def rule_threshold(value):
        execute(
            url,
            "UPDATE ml_ops_alerts SET condition = jsonb_set(condition, '{threshold}', %s) "
            "WHERE record_type = 'rule' AND name = 'live_performance_decay'",
            (json.dumps(value),),
        )

    rule_threshold(sharpe - 0.5)  # the floor below the live Sharpe: no decay
    assert run(live_performance, live, config)["live_performance_decay_alert"].value == "none"
    assert list_alerts(db, "open", "live_performance_decay") == []

    rule_threshold(sharpe + 0.5)  # the floor above the live Sharpe: decay
    meta = run(live_performance, live, config)
    (alert,) = list_alerts(db, "open", "live_performance_decay")
    assert meta["live_performance_decay_alert"].value == f"alert {alert['id']} raised"
    assert alert["subject"] == f"lightgbm v{version['version']}"
    assert alert["message"].startswith(
        f"lightgbm v{version['version']} (champion): live net_sharpe {sharpe:.3g} over the "
        f"last 63b (net_sharpe < {sharpe + 0.5:g})"
    )
    assert alert["details"]["value"] == pytest.approx(sharpe)
    run(live_performance, live, config)  # still decayed: the same alert, seen again
    (again,) = list_alerts(db, "open", "live_performance_decay")
    assert (again["id"], again["occurrences"]) == (alert["id"], 2)

    rule_threshold(sharpe - 0.5)  # the same window now clears the floor
    meta = run(live_performance, live, config)
    assert meta["live_performance_decay_alert"].value == "none"
    assert list_alerts(db, "open", "live_performance_decay") == []
    (resolved,) = [a for a in list_alerts(db, "resolved") if a["id"] == alert["id"]]
    assert "no longer meets net_sharpe <" in resolved["resolution"]
    rule_threshold(0.0)


def test_a_window_read_out_of_order_is_sorted_by_bar_and_symbol():
    # Three records as PostgreSQL packs them (big-endian; microseconds since 2000-01-01),
    # in an order the statement does not promise against.
    records = np.array(
        [
            (86_400_000_000, 0.7, 1, 1, 0.01),
            (0, 0.4, -1, 0, np.nan),
            (86_400_000_000, 0.2, -1, 0, -0.02),
        ],
        dtype=WINDOW_RECORD,
    ).tobytes()
    frame = window_frame(["B", "A", "A"], records)
    assert list(frame["symbol"]) == ["A", "A", "B"]
    assert list(frame["bar_ts"]) == [
        pd.Timestamp("2000-01-01", tz="UTC"),
        pd.Timestamp("2000-01-02", tz="UTC"),
        pd.Timestamp("2000-01-02", tz="UTC"),
    ]
    assert list(frame["probability"]) == [0.4, 0.2, 0.7]
    assert list(frame["signal"]) == [-1, -1, 1]
    assert np.isnan(frame["realized_net_return"][0])
