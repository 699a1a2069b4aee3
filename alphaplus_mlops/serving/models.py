"""A model version loaded for serving: verified against the registry, opened, warmed up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.store.artifacts import ArtifactStore

WARMUP_CALLS = 3


@dataclass(frozen=True)
class ServedModel:
    """One version's onnxruntime session with the registry facts a caller needs.

    The role it serves in (champion, challenger, previous) belongs to the service's
    snapshot, not to the model: a challenger promoted to champion keeps its session.
    """

    id: str
    family: str
    version: int
    status: str
    """The version's status when it was loaded (the role is the snapshot's)."""
    feature_names: tuple[str, ...]
    feature_version: str | None
    """The feature code version of its dataset: serving computes features only for it."""
    n_features: int
    onnx_sha256: str
    model: OnnxModel
    loaded_at: datetime

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features)


def _input_width(model: OnnxModel) -> int | None:
    shape = model.session.get_inputs()[0].shape
    width = shape[-1] if shape else None
    return width if isinstance(width, int) and width > 0 else None


def load_served_model(store: ArtifactStore, version: dict) -> ServedModel:
    """Read ``version``'s ONNX file, verify its SHA-256 against the registry, open it with
    one intra-op thread and run a few predictions on zeros.

    Raises ArtifactIntegrityError (missing or altered file) before onnxruntime ever sees
    the bytes, and ValueError when the file's input width disagrees with the version's
    feature names; onnxruntime's own errors pass through.
    """
    data = store.get_bytes(version["onnx_uri"], version["onnx_sha256"])
    model = OnnxModel(data, intra_op_threads=1)
    names = tuple(version.get("feature_names") or ())
    width = _input_width(model)
    if width is not None and names and width != len(names):
        raise ValueError(
            f"{version['family']} v{version['version']}: the ONNX file takes {width} "
            f"features but the version records {len(names)}"
        )
    width = width or len(names)
    if not width:
        raise ValueError(
            f"{version['family']} v{version['version']}: neither the ONNX file nor the "
            "version says how many features it takes"
        )
    # The first runs of a session allocate its buffers; do it here, not on a request.
    zeros = np.zeros((1, width), dtype=np.float32)
    for _ in range(WARMUP_CALLS):
        model.predict_proba(zeros)
    return ServedModel(
        id=str(version["id"]),
        family=version["family"],
        version=int(version["version"]),
        status=version["status"],
        feature_names=names,
        feature_version=version.get("feature_version"),
        n_features=width,
        onnx_sha256=version["onnx_sha256"],
        model=model,
        loaded_at=datetime.now(UTC),
    )
