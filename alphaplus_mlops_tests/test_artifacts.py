"""The artifact store on real files, and its audit against a real PostgreSQL: a moved store,
a path with a space, truncated files, failed writes, the periodic scan and its alerts."""

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.artifact_scan import artifact_scan_schedule
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.alerts import (
    acknowledge_alert,
    fire_alert,
    list_alerts,
    open_alerts,
)
from alphaplus_mlops.store.artifact_audit import audit_artifacts, raise_artifact_alerts
from alphaplus_mlops.store.artifacts import (
    TEMPORARY_PREFIX,
    ArtifactCorruptError,
    ArtifactMissingError,
    LocalArtifactStore,
    sha256_bytes,
)
from alphaplus_mlops.store.dataset_records import record_dataset
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.performance import record_performance
from alphaplus_mlops.store.versions import register_model_version

from .conftest import rows

MODEL = b"a native model's bytes " * 100


def temporaries(root: Path) -> list[Path]:
    return list(root.rglob(f"{TEMPORARY_PREFIX}*"))


def test_a_store_moved_to_a_path_with_a_space_serves_every_recorded_uri(tmp_path):
    old = LocalArtifactStore(tmp_path / "old home" / "artifacts")
    stored = old.put_bytes(MODEL, ".cbm")
    assert "%20" in stored.uri  # what the database records is a proper, encoded URI
    assert old.get_bytes(stored.uri, stored.sha256) == MODEL

    shutil.move(tmp_path / "old home", tmp_path / "restored copy")
    moved = LocalArtifactStore(tmp_path / "restored copy" / "artifacts")
    # The recorded URI still names the old folder; the store's root is what counts.
    assert moved.get_bytes(stored.uri, stored.sha256) == MODEL
    moved.verify(stored.uri, stored.sha256)
    assert moved.path_of(stored.uri) == (
        tmp_path / "restored copy" / "artifacts" / stored.sha256[:2] / f"{stored.sha256}.cbm"
    )
    with pytest.raises(ArtifactMissingError, match="artifact missing"):
        old.get_bytes(stored.uri, stored.sha256)


def test_a_truncated_file_is_refused_then_repaired_by_putting_it_again(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    first = store.put_bytes(MODEL, ".onnx")
    assert not first.repaired
    path = store.path_of(first.uri)
    path.write_bytes(MODEL[:100])  # a crash mid-copy, a full disk

    with pytest.raises(ArtifactCorruptError, match="fails its checksum"):
        store.get_bytes(first.uri, first.sha256)
    again = store.put_bytes(MODEL, ".onnx")
    assert (again.uri, again.sha256, again.size, again.repaired) == (
        first.uri,
        first.sha256,
        len(MODEL),
        True,
    )
    assert store.get_bytes(first.uri, first.sha256) == MODEL
    assert not store.put_bytes(MODEL, ".onnx").repaired  # a sound file is left alone
    assert temporaries(store.root) == []


def test_put_file_repairs_a_corrupt_file_too(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    source = tmp_path / "model.json"
    source.write_bytes(MODEL)
    first = store.put_file(source)
    store.path_of(first.uri).write_bytes(b"\x00" * len(MODEL))  # same size, other bytes
    assert store.put_file(source).repaired
    assert store.get_bytes(first.uri, first.sha256) == MODEL


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    digest = sha256_bytes(MODEL)
    # A folder squatting on the final name: the rename into place fails.
    store.path_for(digest, ".bin").mkdir(parents=True)
    with pytest.raises(OSError):
        store.put_bytes(MODEL, ".bin")
    assert temporaries(store.root) == []


def test_no_uri_reads_outside_the_store(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    stored = store.put_bytes(MODEL, ".cbm")
    outside = tmp_path / "secret"
    outside.write_bytes(MODEL)
    with pytest.raises(ArtifactCorruptError, match="not a stored artifact's name"):
        store.get_bytes(outside.as_uri(), stored.sha256)
    with pytest.raises(ArtifactCorruptError, match="not a stored artifact's name"):
        store.get_bytes(f"file://{store.root}/../{stored.sha256}.cbm/..", stored.sha256)
    # A URI naming one checksum cannot be read as another's file.
    other = store.put_bytes(b"other bytes", ".cbm")
    with pytest.raises(ArtifactCorruptError, match="names checksum"):
        store.get_bytes(other.uri, stored.sha256)
    # A symlink planted in the store is not followed out of it.
    path = store.path_of(stored.uri)
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(ArtifactCorruptError, match="outside the store"):
        store.get_bytes(stored.uri, stored.sha256)
    with pytest.raises(ValueError, match="file:// or an object-store URL"):
        store.get_bytes(f"http://elsewhere/{stored.sha256}.cbm", stored.sha256)


def test_the_scan_finds_corrupt_and_stray_files_and_sweeps_dead_writers_temporaries(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    good = store.put_bytes(b"good", ".parquet")
    bad = store.put_bytes(b"to be truncated", ".parquet")
    store.path_of(bad.uri).write_bytes(b"to be")
    stray = store.root / "zz" / "notes.txt"
    stray.parent.mkdir()
    stray.write_text("not an artifact")
    folder = store.path_of(good.uri).parent
    dead = folder / f"{TEMPORARY_PREFIX}dead"
    dead.write_bytes(b"half")
    hour_ago = time.time() - 7200
    os.utime(dead, (hour_ago, hour_ago))
    live = folder / f"{TEMPORARY_PREFIX}live"
    live.write_bytes(b"being written")

    found = {(p.path, p.problem) for p in store.scan(temporary_age_seconds=3600)}
    assert found == {
        (store.path_of(bad.uri), "corrupt"),
        (stray, "unexpected"),
        (dead, "temporary"),
    }
    assert store.sweep_temporaries(3600) == [dead]
    assert not dead.exists() and live.exists()


# The audit against the database ---------------------------------------------------------


@pytest.fixture
def recorded(create_database, tmp_path):
    """A fresh database whose rows record a dataset, two versions and an evaluation, all
    stored under a home whose path has a space."""
    url = create_database()
    migrate(url)
    settings = Settings(database_url=url, home=tmp_path / "alpha plus")
    store = LocalArtifactStore(settings.artifacts_dir)
    db = Database(url)
    data = store.put_bytes(b"dataset parquet", ".parquet")
    dataset = record_dataset(
        db,
        content_hash="c" * 64,
        symbols=["AAA"],
        window_start=datetime(2020, 1, 1, tzinfo=UTC),
        window_end=datetime(2021, 1, 1, tzinfo=UTC),
        n_rows=10,
        class_balance={"1": 0.5},
        feature_names=["f"],
        label_config={"horizon": 1},
        artifact_uri=data.uri,
        artifact_sha256=data.sha256,
        feature_version="v1",
    )
    versions = []
    for n in (1, 2):
        native = store.put_bytes(f"native {n}".encode(), ".txt")
        onnx = store.put_bytes(f"onnx {n}".encode(), ".onnx")
        oof = store.put_bytes(f"oof {n}".encode(), ".parquet")
        version_id, _ = register_model_version(
            db,
            family="lightgbm",
            dataset_id=dataset.id,
            training_job_id=None,
            params={},
            feature_names=["f"],
            code_version="test",
            native_uri=native.uri,
            native_sha256=native.sha256,
            onnx_uri=onnx.uri,
            onnx_sha256=onnx.sha256,
            training_path="full",
            oof_uri=oof.uri,
            oof_sha256=oof.sha256,
            train_seconds=1.0,
        )
        versions.append({"id": version_id, "native": native, "onnx": onnx, "oof": oof})
    returns = store.put_bytes(b"returns 1", ".parquet")
    evaluation = record_performance(
        db,
        model_version_id=versions[0]["id"],
        dataset_id=dataset.id,
        split="walk_forward_oof",
        n_rows=10,
        ml_metrics={},
        business_metrics={},
        returns=returns,
    )
    with db.connection() as conn:
        conn.execute(
            "UPDATE model_versioning SET status = 'champion' WHERE id = %s", (versions[0]["id"],)
        )
    yield {
        "url": url,
        "db": db,
        "settings": settings,
        "store": store,
        "versions": versions,
        "dataset": dataset,
        "data": data,
        "returns": returns,
        "evaluation": evaluation,
    }
    db.close()


def test_a_sound_store_has_no_findings(recorded):
    assert audit_artifacts(recorded["db"], recorded["store"]) == []


def test_the_audit_names_each_missing_or_corrupt_recorded_artifact(recorded):
    store, (champion, candidate) = recorded["store"], recorded["versions"]
    store.path_of(champion["native"].uri).unlink()
    store.path_of(champion["onnx"].uri).write_bytes(b"trunc")
    store.path_of(recorded["returns"].uri).unlink()
    store.path_of(recorded["data"].uri).write_bytes(b"altered parquet")

    findings = audit_artifacts(recorded["db"], store)
    assert [(f.table, f.record_id, f.kind, f.role, f.problem) for f in findings] == [
        ("model_performance_tracking", recorded["evaluation"], "returns", "champion", "missing"),
        ("model_versioning", champion["id"], "native", "champion", "missing"),
        ("model_versioning", champion["id"], "onnx", "champion", "corrupt"),
        ("training_data_management", recorded["dataset"].id, "dataset", None, "corrupt"),
    ]
    assert findings[1].what == "lightgbm v1 (champion) native model"
    assert findings[1].uri == champion["native"].uri
    assert "artifact missing" in findings[1].detail
    assert "fails its checksum" in findings[2].detail
    assert candidate["id"] not in {f.record_id for f in findings}

    raised = raise_artifact_alerts(recorded["db"], findings)
    assert [len(group) for group, _ in raised] == [1, 2, 1]  # one alert per record
    assert all(alert.new for _, alert in raised)
    alerts = open_alerts(recorded["db"], "artifact_missing")
    assert {a["details"]["key"] for a in alerts} == {
        f"model_performance_tracking:{recorded['evaluation']}",
        f"model_versioning:{champion['id']}",
        f"training_data_management:{recorded['dataset'].id}",
    }
    (champion_alert,) = [a for a in alerts if a["details"]["record_id"] == champion["id"]]
    assert champion_alert["message"] == (
        "lightgbm v1 (champion): native model missing; ONNX model corrupt"
    )
    assert (champion_alert["severity"], champion_alert["category"]) == ("critical", "system")

    # Scanning again while the problems remain raises nothing new: the same rows are seen
    # again, also after someone acknowledged one.
    again = raise_artifact_alerts(recorded["db"], audit_artifacts(recorded["db"], store))
    assert not any(alert.new for _, alert in again)
    assert len(open_alerts(recorded["db"], "artifact_missing")) == 3
    assert acknowledge_alert(recorded["db"], champion_alert["id"], "ops")
    assert not acknowledge_alert(recorded["db"], champion_alert["id"], "ops")  # not open now
    third = raise_artifact_alerts(recorded["db"], audit_artifacts(recorded["db"], store))
    assert [(alert.new, alert.occurrences) for _, alert in third] == [(False, 3)] * 3
    assert [alert.state for _, alert in third] == ["open", "acknowledged", "open"]
    assert len(list_alerts(recorded["db"], rule_name="artifact_missing")) == 3


def test_a_disabled_rule_raises_nothing(recorded):
    db = recorded["db"]
    with db.connection() as conn:
        conn.execute(
            "UPDATE ml_ops_alerts SET enabled = false "
            "WHERE record_type = 'rule' AND name = 'artifact_missing'"
        )
    assert fire_alert(db, "artifact_missing", "lost", {"key": "k"}) is None
    assert open_alerts(db) == []
    with pytest.raises(LookupError):
        fire_alert(db, "no_such_rule", "lost", {"key": "k"})


def test_the_scan_job_alerts_on_lost_files_once_and_sweeps_temporaries(recorded):
    store, (champion, _) = recorded["store"], recorded["versions"]
    # The home moved: a path with a space again, and the recorded URIs name the old one.
    new_home = recorded["settings"].home.parent / "moved home"
    shutil.move(recorded["settings"].home, new_home)
    settings = Settings(database_url=recorded["url"], home=new_home)
    store = LocalArtifactStore(settings.artifacts_dir)
    native_path = store.path_of(champion["native"].uri)
    native_bytes = native_path.read_bytes()
    native_path.unlink()
    dead = store.path_of(champion["onnx"].uri).parent / f"{TEMPORARY_PREFIX}dead"
    dead.write_bytes(b"half")
    os.utime(dead, (time.time() - 7200,) * 2)

    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=recorded["url"]))
    )
    job = defs.resolve_job_def("artifact_scan")
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        result = job.execute_in_process(instance=instance)
        assert result.success
    (alert,) = rows(
        recorded["url"],
        "SELECT * FROM ml_ops_alerts WHERE record_type = 'alert' AND name = 'artifact_missing'",
    )
    assert alert["subject"] == f"model_versioning:{champion['id']}"
    assert alert["message"] == "lightgbm v1 (champion): native model missing"
    assert not dead.exists()
    metadata = [
        e.event_specific_data.metadata
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT"
    ][0]
    assert metadata["unreadable_artifacts"].value == 1
    assert metadata["alerts_raised"].value == 0  # the first run raised it; seen again
    assert (alert["state"], alert["occurrences"]) == ("open", 2)

    # The file is restored: the next scan resolves the alert.
    native_path.write_bytes(native_bytes)
    result = job.execute_in_process(instance=instance)
    (alert,) = rows(
        recorded["url"],
        "SELECT * FROM ml_ops_alerts WHERE record_type = 'alert' AND name = 'artifact_missing'",
    )
    assert alert["state"] == "resolved"
    assert "present and matching" in alert["resolution"]


def test_the_scan_is_scheduled_daily_once_per_day():
    when = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=when)
    request = artifact_scan_schedule(context)
    assert request.run_key == "artifact_scan:2026-03-02"
    assert artifact_scan_schedule.cron_schedule == "30 5 * * *"
