"""The artifact store's contract, on both backends: a local folder and a real S3-compatible
server (moto's, on 127.0.0.1) through obstore. Then the training, promotion and serving
path with every artifact in a bucket."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import obstore
import pytest
from obstore.store import from_url

from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.serving.service import SignalService
from alphaplus_mlops.settings import Settings, SettingsError
from alphaplus_mlops.store.artifact_audit import audit_artifacts
from alphaplus_mlops.store.artifacts import (
    ArtifactCorruptError,
    ArtifactMissingError,
    LocalArtifactStore,
    open_artifact_store,
    sha256_bytes,
    split_name,
)
from alphaplus_mlops.store.object_artifacts import (
    ArtifactStoreUnavailableError,
    ObjectArtifactStore,
)

from .conftest import simulated_project

MODEL = b"a model's bytes " * 4096


class Backend:
    """A store and a way around it, to damage what it holds as a disk or a bucket would."""

    def __init__(self, store):
        self.store = store
        if isinstance(store, ObjectArtifactStore):
            self._raw = from_url(store.url)

    def _key(self, uri):
        return ObjectArtifactStore.key_for(*split_name(uri.rsplit("/", 1)[1]))

    def overwrite(self, uri, data):
        if isinstance(self.store, LocalArtifactStore):
            self.store.path_of(uri).write_bytes(data)
        else:
            obstore.put(self._raw, self._key(uri), data)

    def delete(self, uri):
        if isinstance(self.store, LocalArtifactStore):
            self.store.path_of(uri).unlink()
        else:
            obstore.delete(self._raw, self._key(uri))

    def put_raw(self, key, data):
        if isinstance(self.store, LocalArtifactStore):
            path = self.store.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return path
        obstore.put(self._raw, key, data)
        return f"{self.store.url}/{key}"


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return Backend(open_artifact_store(tmp_path / "artifacts"))
    server = request.getfixturevalue("s3_env")
    return Backend(open_artifact_store(server.new_bucket()))


def test_a_put_is_read_back_under_a_name_that_is_its_checksum(backend):
    store = backend.store
    stored = store.put_bytes(MODEL, ".onnx")
    digest = sha256_bytes(MODEL)
    assert stored.sha256 == digest and stored.size == len(MODEL) and not stored.repaired
    assert stored.uri.endswith(f"/{digest[:2]}/{digest}.onnx")
    assert store.get_bytes(stored.uri, digest) == MODEL
    store.verify(stored.uri, digest)
    # The same content is one object: a second put changes nothing.
    assert store.put_bytes(MODEL, ".onnx") == stored
    assert store.location(stored.uri).endswith(f"{digest}.onnx")


def test_tampered_and_missing_artifacts_are_refused_and_a_new_put_repairs(backend):
    store = backend.store
    stored = store.put_bytes(MODEL, ".cbm")
    backend.overwrite(stored.uri, MODEL[:-1] + b"!")  # same size, one byte altered
    for read in (store.get_bytes, store.verify):
        with pytest.raises(ArtifactCorruptError, match="fails its checksum"):
            read(stored.uri, stored.sha256)
    repaired = store.put_bytes(MODEL, ".cbm")
    assert repaired.repaired and repaired.uri == stored.uri
    assert store.get_bytes(stored.uri, stored.sha256) == MODEL

    backend.delete(stored.uri)
    for read in (store.get_bytes, store.verify):
        with pytest.raises(ArtifactMissingError, match="artifact missing"):
            read(stored.uri, stored.sha256)


def test_a_record_is_read_by_its_checksum_only(backend):
    store = backend.store
    stored = store.put_bytes(MODEL, ".onnx")
    other = store.put_bytes(b"other bytes", ".onnx")
    with pytest.raises(ArtifactCorruptError, match="names checksum"):
        store.get_bytes(other.uri, stored.sha256)
    with pytest.raises(ArtifactCorruptError, match="not a stored artifact's name"):
        store.get_bytes(stored.uri.rsplit("/", 1)[0] + "/model.onnx", stored.sha256)
    with pytest.raises(ValueError, match="object-store URL"):
        store.get_bytes(f"http://elsewhere/{stored.sha256}.onnx", stored.sha256)


def test_concurrent_puts_of_the_same_content_leave_one_good_artifact(backend):
    store = backend.store
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.put_bytes(MODEL, ".onnx"), range(16)))
    assert {r.uri for r in results} == {results[0].uri}
    assert store.get_bytes(results[0].uri, results[0].sha256) == MODEL
    assert store.scan() == []


def test_the_scan_finds_corrupt_objects_and_strays(backend):
    store = backend.store
    good = store.put_bytes(b"good", ".parquet")
    bad = store.put_bytes(b"to be truncated", ".parquet")
    backend.overwrite(bad.uri, b"to be")
    stray = backend.put_raw("zz/notes.txt", b"not an artifact")
    misplaced = backend.put_raw(f"00/{good.sha256}.parquet", b"good")
    found = {(str(p.path), p.problem) for p in store.scan()}
    assert found == {
        (store.location(bad.uri), "corrupt"),
        (str(stray), "unexpected"),
        (str(misplaced), "unexpected"),
    }


def test_records_written_by_one_backend_serve_from_the_other_once_copied(s3_env, tmp_path):
    local = LocalArtifactStore(tmp_path / "artifacts")
    bucket = ObjectArtifactStore(s3_env.new_bucket())
    stored = local.put_bytes(MODEL, ".onnx")
    with pytest.raises(ArtifactMissingError, match=bucket.url):
        bucket.get_bytes(stored.uri, stored.sha256)
    bucket.put_bytes(local.get_bytes(stored.uri, stored.sha256), ".onnx")
    assert bucket.get_bytes(stored.uri, stored.sha256) == MODEL  # a file:// record


def test_a_missing_bucket_is_named_and_nothing_is_half_written(s3_env):
    store = ObjectArtifactStore(s3_env.new_bucket().replace("apm-", "apm-gone-"))
    with pytest.raises(ArtifactStoreUnavailableError, match="bucket does not exist"):
        store.put_bytes(MODEL, ".onnx")


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://example.com/models", "the scheme 'http'"),
        ("s3://key:secret@bucket/models", "bucket and prefix only"),
        ("s3:///models", "must name a bucket"),
        ("bucket/models", "no scheme"),
    ],
)
def test_the_artifact_url_setting_refuses_what_it_cannot_use(url, problem):
    with pytest.raises(SettingsError, match=problem) as caught:
        Settings.from_env({"ALPHAPLUS_ARTIFACT_URL": url})
    assert "secret" not in str(caught.value)


def test_the_artifact_url_setting_picks_the_backend(tmp_path):
    unset = Settings.from_env({"ALPHAPLUS_HOME": str(tmp_path)})
    assert open_artifact_store(unset.artifact_location).root == tmp_path / "artifacts"
    folder = Settings.from_env({"ALPHAPLUS_ARTIFACT_URL": (tmp_path / "elsewhere").as_uri()})
    assert open_artifact_store(folder.artifact_location).root == tmp_path / "elsewhere"
    bucket = Settings.from_env({"ALPHAPLUS_ARTIFACT_URL": "s3://desk-models/prod"})
    assert open_artifact_store(bucket.artifact_location).url == "s3://desk-models/prod"


# The pipeline on object storage --------------------------------------------------------


def test_training_promotion_and_serving_run_on_object_storage(create_database, tmp_path, s3_env):
    """A champion trained, gated and promoted with every artifact in a bucket; a signal
    service that has only the bucket serves it, and refuses it once its object is altered."""
    symbols = ["OBA", "OBB"]
    project = simulated_project(
        create_database, tmp_path / "home", symbols, artifact_url=s3_env.new_bucket()
    )
    version = project.train("lightgbm", symbols, rounds=40)
    assert version["status"] == "champion"
    for kind in ("native", "onnx", "oof"):
        assert version[f"{kind}_uri"].startswith(project.settings.artifact_url + "/")
    assert not (project.settings.home / "artifacts").exists()  # nothing went to a folder
    assert audit_artifacts(project.db, project.store) == []

    onnx = project.store.get_bytes(version["onnx_uri"], version["onnx_sha256"])
    another_host = open_artifact_store(project.settings.artifact_url)
    with SignalService(project.db, another_host, poll_seconds=60) as service:
        served = service.models()["lightgbm"].champion
        assert served.id == str(version["id"]) and served.onnx_sha256 == version["onnx_sha256"]
        x = np.random.default_rng(0).normal(size=(5, served.n_features)).astype("float32")
        (answer,) = service.answer("lightgbm", x)
        np.testing.assert_array_equal(answer.probability, OnnxModel(onnx).predict_proba(x))

    Backend(another_host).overwrite(version["onnx_uri"], onnx[:-8])
    with SignalService(project.db, another_host, poll_seconds=60) as service:
        family = service.models().get("lightgbm")
        assert family is None or family.champion is None
        assert "fails its checksum" in service.errors[-1].error
    (finding,) = audit_artifacts(project.db, another_host)
    assert (finding.kind, finding.problem) == ("onnx", "corrupt")
    project.db.close()
