"""The market_bars asset, materialized by Dagster into a real PostgreSQL."""

import shutil

import dagster as dg
import pytest

from alphaplus_mlops.defs import build_definitions
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.resources import MarketDataResource, PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.bars import summarize_bars
from alphaplus_mlops.store.db import Database, dagster_storage_url

from .conftest import REPO_ROOT, rows

SMALL_RUN = {
    "ops": {
        "market_bars": {
            "config": {
                "sources": ["sample", "simulator"],
                "sim_symbols": ["SIMA", "SIMB"],
                "sim_seed": 3,
                "sim_bars": 300,
            }
        }
    }
}


def materialize_bars(url: str, run_config=SMALL_RUN, instance=None, environ=None):
    settings = Settings.from_env(environ or {})
    return dg.materialize(
        [market_bars],
        resources={
            "postgres": PostgresResource(database_url=url),
            "market_data": MarketDataResource.from_settings(settings),
        },
        run_config=run_config,
        instance=instance,
    )


def test_market_bars_materializes_into_postgres_with_useful_metadata(create_database):
    url = create_database()  # never migrated: the resource migrates on first use
    result = materialize_bars(url)
    assert result.success
    meta = result.asset_materializations_for_node("market_bars")[0].metadata
    assert meta["rows_received"].value == 2 * 5031 + 2 * 300
    assert meta["rows_added"].value == meta["rows_received"].value
    assert meta["symbols"].value == ["NASDAQ", "SIMA", "SIMB", "SP500"]
    assert meta["time_range"].value == "1999-01-04 .. 2018-12-31"
    assert "| SIMA " in meta["by_symbol"].value
    assert "simulator_break_ts" in meta
    with Database(url) as db:
        stored = {s.symbol: s.bars for s in summarize_bars(db)}
    assert stored == {
        "NASDAQ": 5031,
        "SP500": 5031,
        "SIMA": 300,
        "SIMB": 300,
    }

    again = materialize_bars(url)
    meta = again.asset_materializations_for_node("market_bars")[0].metadata
    assert (meta["rows_added"].value, meta["rows_updated"].value) == (0, 0)


def test_a_new_seed_for_stored_symbols_is_refused_unless_restated_on_the_record(
    create_database,
):
    url = create_database()
    simulated = {"sources": ["simulator"], "sim_symbols": ["RSA"], "sim_bars": 60}
    assert materialize_bars(url, {"ops": {"market_bars": {"config": {**simulated, "sim_seed": 1}}}})
    reseeded = {**simulated, "sim_seed": 2}
    with pytest.raises(dg.Failure, match="restate: true"):
        materialize_bars(url, {"ops": {"market_bars": {"config": reseeded}}})
    assert rows(url, "SELECT count(*) AS n FROM market_bar_revisions")[0]["n"] == 0
    restated = materialize_bars(
        url, {"ops": {"market_bars": {"config": {**reseeded, "restate": True}}}}
    )
    meta = restated.asset_materializations_for_node("market_bars")[0].metadata
    assert meta["rows_updated"].value == 60
    assert rows(url, "SELECT count(*) AS n FROM market_bar_revisions")[0]["n"] == 60


def test_an_unknown_source_fails_the_run_with_its_name(database_url):
    config = {"ops": {"market_bars": {"config": {"sources": ["bloomberg"]}}}}
    with pytest.raises(dg.Failure, match="bloomberg"):
        materialize_bars(database_url, config)


def test_unset_config_falls_back_to_the_environment_settings(create_database):
    url = create_database()
    environ = {
        "ALPHAPLUS_MARKET_SOURCES": "simulator",
        "ALPHAPLUS_SIM_SYMBOLS": "ENVA",
        "ALPHAPLUS_SIM_BARS": "90",
    }
    result = materialize_bars(url, run_config={}, environ=environ)
    meta = result.asset_materializations_for_node("market_bars")[0].metadata
    assert meta["symbols"].value == ["ENVA"]
    assert meta["rows_received"].value == 90


def test_definitions_load_and_name_the_market_bars_asset():
    defs = build_definitions(Settings.from_env({}))
    assert defs.resolve_assets_def("market_bars") is not None
    assert defs.resolve_job_def("ingest_market_bars") is not None


def test_dagster_yaml_keeps_runs_and_events_in_postgres(create_database, tmp_path, monkeypatch):
    """The project's dagster.yaml, loaded as users load it: runs land in PostgreSQL."""
    url = create_database()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("ALPHAPLUS_DAGSTER_PG_URL", dagster_storage_url(url))
    monkeypatch.setenv("ALPHAPLUS_DAGSTER_STORAGE", str(tmp_path / "storage"))
    config = {"ops": {"market_bars": {"config": {"sources": ["simulator"], "sim_bars": 120}}}}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = materialize_bars(url, config, instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("market_bars")) is not None
    (run,) = rows(url, "SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
    assert run["status"] == "SUCCESS"
    (events,) = rows(
        url, "SELECT count(*) AS n FROM event_logs WHERE run_id = %s", (result.run_id,)
    )
    assert events["n"] > 0


def test_without_its_storage_url_dagster_refuses_to_start_rather_than_use_sqlite(
    tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.delenv("ALPHAPLUS_DAGSTER_PG_URL", raising=False)
    with pytest.raises(Exception, match="ALPHAPLUS_DAGSTER_PG_URL"):
        dg.DagsterInstance.from_config(str(home))
