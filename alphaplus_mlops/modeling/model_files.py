"""Datasets, models and prediction frames to and from an ArtifactStore.

The one place that turns stored bytes into a Dataset or a fitted model and back: each read
checks the file against the SHA-256 recorded with it (in model_versioning or the dataset's
hand-off) before anything is parsed. Files only: no database here.
"""

from __future__ import annotations

import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.families.base import ModelFamily
from alphaplus_mlops.modeling.datasets import Dataset
from alphaplus_mlops.store.artifacts import ArtifactStore, StoredArtifact


def load_dataset(store: ArtifactStore, ref: dict) -> Dataset:
    """The dataset a ``training_dataset`` hand-off points at."""
    data = store.get_bytes(ref["artifact_uri"], ref["artifact_sha256"])
    return Dataset.from_parquet_bytes(data, LabelConfig(**ref["label_config"]))


def load_model(store: ArtifactStore, family: ModelFamily, version: dict) -> Any:
    """A version's native model, from the bytes whose checksum was just verified."""
    return family.load_native(store.get_bytes(version["native_uri"], version["native_sha256"]))


def store_model_files(
    store: ArtifactStore, family: ModelFamily, model: Any, n_features: int
) -> tuple[StoredArtifact, StoredArtifact]:
    """The native file and the ONNX export, content-addressed."""
    with tempfile.TemporaryDirectory() as tmp:
        native_path = Path(tmp) / f"model{family.native_suffix}"
        onnx_path = Path(tmp) / "model.onnx"
        family.save_native(model, native_path)
        family.export_onnx(model, n_features, onnx_path)
        return store.put_file(native_path), store.put_file(onnx_path)


def store_training_files(
    store: ArtifactStore, family: ModelFamily, model: Any, n_features: int, oof: pd.DataFrame
) -> tuple[StoredArtifact, StoredArtifact, StoredArtifact]:
    """The native file, the ONNX export and the out-of-fold predictions, content-addressed.

    The frame is stored from a second thread while this one exports the model: Parquet
    encoding, hashing and fsync release the GIL, the ONNX converters hold it, so on a second
    core the two take about as long as the longer of them."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-oof") as pool:
        stored_oof = pool.submit(store_frame, store, oof)
        native, onnx = store_model_files(store, family, model, n_features)
        return native, onnx, stored_oof.result()


def store_frame(store: ArtifactStore, frame: pd.DataFrame) -> StoredArtifact:
    """A frame (out-of-fold predictions, say) as Parquet."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return store.put_bytes(buffer.getvalue(), ".parquet")


def load_frame(store: ArtifactStore, uri: str, sha256: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(store.get_bytes(uri, sha256)))


def store_returns(store: ArtifactStore, returns: pd.Series) -> StoredArtifact:
    """Per-bar returns indexed by time, as Parquet (ts, ret)."""
    return store_frame(store, pd.DataFrame({"ts": returns.index, "ret": returns.to_numpy()}))


def load_returns(store: ArtifactStore, uri: str, sha256: str) -> pd.Series:
    frame = load_frame(store, uri, sha256)
    return pd.Series(frame["ret"].to_numpy(), index=pd.DatetimeIndex(frame["ts"]))
