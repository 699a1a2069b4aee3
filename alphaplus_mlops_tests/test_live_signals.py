"""The market clock and the batch path: `market advance` reveals the simulator's next bars,
and `live_signals` scores each new bar once with the champion and its shadows, logging
every answer.

A real lightgbm champion trained by the train_model job on simulated bars loaded up to a
date, on a real PostgreSQL; the advanced bars are the default simulator's, as the CLI
generates them from the ALPHAPLUS_SIM_* settings.
"""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs.assets.live import live_signals, live_signals_sensor
from alphaplus_mlops.serving.features import serving_features
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import load_bars

from .conftest import execute, rows, simulated_project

SYMBOLS = ["LSA", "LSB"]
SEED = 11
SIM_BARS = 720
LOADED = 700  # bars stored before the clock moves


@pytest.fixture(scope="module")
def live(create_database, tmp_path_factory):
    # A strong planted signal so the first model is promoted for certain; the bars the
    # clock reveals later are the CLI's (default simulator), which is what a desk sees.
    home = tmp_path_factory.mktemp("live")
    project = simulated_project(create_database, home, SYMBOLS, n_bars=LOADED, seed=SEED)
    url, db, settings, resources = project.url, project.db, project.settings, project.resources
    champion = project.train("lightgbm", SYMBOLS, rounds=30)
    assert champion["status"] == "champion"
    env = {
        "ALPHAPLUS_DATABASE_URL": url,
        "ALPHAPLUS_HOME": str(home),
        "ALPHAPLUS_SIM_SYMBOLS": ",".join(SYMBOLS),
        "ALPHAPLUS_SIM_SEED": str(SEED),
        "ALPHAPLUS_SIM_BARS": str(SIM_BARS),
    }
    yield {
        "url": url,
        "db": db,
        "champion": champion,
        "resources": resources,
        "store": LocalArtifactStore(settings.artifacts_dir),
        "env": env,
    }
    db.close()


def advance(live, *args):
    return CliRunner().invoke(main, ["market", "advance", *args], env=live["env"])


def score(live, family="lightgbm", **config):
    return dg.materialize(
        [live_signals],
        partition_key=family,
        resources=live["resources"],
        run_config={"ops": {"live_signals": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )


def metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def logged(live, run_id: str) -> list[dict]:
    return rows(
        live["url"],
        "SELECT * FROM model_predictions WHERE request_id = %s ORDER BY symbol, bar_ts, role",
        (run_id,),
    )


def test_advance_refuses_bad_options_with_a_message(live):
    neither = advance(live)
    assert neither.exit_code == 2 and "exactly one of --to DATE and --bars N" in neither.output
    both = advance(live, "--to", "2013-01-01", "--bars", "2")
    assert both.exit_code == 2 and "exactly one" in both.output
    behind = advance(live, "--to", "2010-03-01")
    assert behind.exit_code == 1
    assert "--to 2010-03-01 is earlier than the stored end" in behind.output


def test_live_signals_score_each_new_bar_once_with_champion_and_shadow(live):
    db, champion = live["db"], live["champion"]
    first = score(live, first_run_bars=2)
    assert metadata(first)["bars_scored_by_symbol"] == {"LSA": 2, "LSB": 2}

    # A challenger (the champion's own file under a new version number) answers in shadow.
    execute(
        live["url"],
        """INSERT INTO model_versioning (family, version, model_name, status, dataset_id,
               feature_names, onnx_uri, onnx_sha256)
           SELECT family, version + 1, model_name, 'challenger', dataset_id, feature_names,
                  onnx_uri, onnx_sha256 FROM model_versioning WHERE id = %s""",
        (champion["id"],),
    )
    before = load_bars(db, SYMBOLS)
    moved = advance(live, "--bars", "3")
    assert moved.exit_code == 0, moved.output
    assert "simulator-seed-11: 6 bars, 6 new" in moved.output
    after = load_bars(db, SYMBOLS)
    added = after.merge(before[["symbol", "ts"]], how="left", indicator=True)
    added = added[added["_merge"] == "left_only"].drop(columns="_merge")
    source = simulate_market(SYMBOLS, seed=SEED, config=SimulationConfig(n_bars=SIM_BARS)).bars
    expected_bars = source.groupby("symbol").nth(list(range(LOADED, LOADED + 3)))
    pd.testing.assert_frame_equal(
        added.reset_index(drop=True), expected_bars.reset_index(drop=True), check_dtype=False
    )

    second = score(live)
    meta = metadata(second)
    assert meta["bars_scored_by_symbol"] == {"LSA": 3, "LSB": 3}
    assert (
        meta["models"] == f"champion v{champion['version']}, challenger v{champion['version'] + 1}"
    )
    log = logged(live, second.run_id)
    assert len(log) == 12  # 6 bars, champion and challenger each
    assert {(r["symbol"], pd.Timestamp(r["bar_ts"])) for r in log} == set(
        zip(added["symbol"], added["ts"], strict=True)
    )
    onnx = OnnxModel(live["store"].path_of(champion["onnx_uri"]))
    for r in log:
        features = serving_features(
            db,
            [r["symbol"]],
            as_of=r["bar_ts"],
            feature_names=champion["feature_names"],
            feature_version="features-v1",
        )
        assert features.bar_ts[0] == pd.Timestamp(r["bar_ts"])
        expected = onnx.predict_proba(features.x)[0]
        assert r["probability"] == expected  # bit for bit: same features, same model
        assert r["signal"] == (1 if expected > 0.5 else -1)
    assert sorted({r["role"] for r in log}) == ["challenger", "champion"]

    third = score(live)
    assert metadata(third)["bars_scored"] == 0
    assert logged(live, third.run_id) == []
    assert np.isfinite([r["latency_us"] for r in log]).all()


def test_a_family_without_a_champion_is_skipped_with_a_message(live):
    result = score(live, family="xgboost")
    assert result.success
    meta = metadata(result)
    assert meta["skipped"] == "no xgboost champion: nothing to score until one is promoted"
    assert meta["bars_scored"] == 0


def test_the_sensor_asks_for_a_run_per_champion_family_once_per_arrival(live):
    sensor = live_signals_sensor
    with dg.build_sensor_context(cursor=None, resources=live["resources"]) as context:
        requests = sensor(context)
        assert [
            (r.partition_key, r.run_key.startswith("live_signals:lightgbm:")) for r in requests
        ] == [("lightgbm", True)]
        # One run scores the bars, then fills outcomes and the live windows downstream, looks
        # at the running experiment and the probation, and writes the dashboard's snapshot.
        assert [k.to_user_string() for k in requests[0].asset_selection] == [
            "live_signals",
            "prediction_outcomes",
            "live_performance",
            "ab_evaluation",
            "probation_review",
            "ml_ops_dashboard",
        ]
        again = sensor(context)
        assert isinstance(again, dg.SkipReason) and "no new bars" in again.skip_message


def test_advance_to_the_end_then_refuses_an_exhausted_source(live):
    to_end = advance(live, "--to", "2030-01-01")
    assert to_end.exit_code == 0, to_end.output
    left = 2 * (SIM_BARS - LOADED - 3)  # after the 3 bars per symbol advanced above
    assert f"{left} bars, {left} new" in to_end.output
    exhausted = advance(live, "--bars", "1")
    assert exhausted.exit_code == 1
    assert "the replay source has no more bars" in exhausted.output


def test_advance_replays_a_file_held_back(live, tmp_path):
    bars = simulate_market(["LSF"], seed=3, config=SimulationConfig(n_bars=90)).bars
    held = tmp_path / "held_back.csv"
    bars.rename(columns={"ts": "timestamp"}).to_csv(held, index=False)
    first = advance(live, "--from-file", str(held), "--bars", "60")
    assert first.exit_code == 0, first.output
    assert f"file:{held.resolve()}: 60 bars, 60 new" in first.output
    to = bars["ts"].iloc[74]
    second = advance(live, "--from-file", str(held), "--to", str(to.date()))
    assert second.exit_code == 0 and "15 bars, 15 new" in second.output
    stored = rows(live["url"], "SELECT ts FROM market_bars WHERE symbol = 'LSF' ORDER BY ts")
    assert [r["ts"] for r in stored] == list(bars["ts"].iloc[:75])

    again = CliRunner().invoke(  # the configured source: ALPHAPLUS_REPLAY_FILE
        main,
        ["market", "advance", "--bars", "100"],
        env={**live["env"], "ALPHAPLUS_REPLAY_FILE": str(held)},
    )
    assert again.exit_code == 0 and "15 bars, 15 new" in again.output
    exhausted = advance(live, "--from-file", str(held), "--bars", "1")
    assert exhausted.exit_code == 1 and f"{held} holds no later bars" in exhausted.output

    edited = bars.copy()
    edited.loc[10, ["open", "high", "low", "close"]] *= 1.01  # a stored bar, other values
    edited.rename(columns={"ts": "timestamp"}).to_csv(held, index=False)
    refused = advance(live, "--from-file", str(held), "--bars", "1")
    assert refused.exit_code == 1
    assert "disagrees with 1 stored bar(s) (first: LSF at " in refused.output
    held.write_text("symbol,timestamp,close\nLSF,2020-01-01,1\n")
    broken = advance(live, "--from-file", str(held), "--bars", "1")
    assert broken.exit_code == 3 and "open" in broken.output
    lone = advance(live, "--symbol", "X", "--bars", "1")
    assert lone.exit_code == 2 and "--symbol names the instrument of a file" in lone.output
