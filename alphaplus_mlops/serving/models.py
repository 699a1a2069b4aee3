"""A model version loaded for serving: verified against the registry, opened, warmed up.

Single rows and batches want different engines. One row is answered fastest by onnxruntime
on one thread (microseconds; the native libraries spend more on their own set-up). For a
batch the native library is often faster (CatBoost and XGBoost several times on 10k rows,
with all cores), sometimes onnxruntime with all cores is; which one depends on the family
and the model. So each version measures, when it is loaded, the candidates on the same
calibration batch and keeps the fastest of those whose probabilities agree with the ONNX
file's (the artifact of record); a request of ``BATCH_MIN_ROWS`` rows or more uses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from alphaplus_mlops.families import get_family
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

WARMUP_CALLS = 3
BATCH_MIN_ROWS = 256
"""From this many rows a request is scored by the version's batch engine."""
# 10,000 rows: at 4,096 native LightGBM and onnxruntime on every core were too close to
# call, and the one chosen could be 1.2x slower than the other at 10,000.
CALIBRATION_ROWS = 10_000
CALIBRATION_RUNS = 5
CALIBRATION_PAUSE_SECONDS = 0.005
BATCH_PARITY = 1e-5
"""Largest |P(y=1) difference| from the ONNX file a batch engine may show on the calibration
batch (measured differences are about 1e-7: float32 sums in another order)."""


@dataclass(frozen=True)
class BatchEngine:
    """How a version scores a batch, and why: the fastest milliseconds of every candidate on
    the calibration batch, and the candidates left out with the reason."""

    name: str
    predict_proba: Callable[[np.ndarray], np.ndarray]
    milliseconds: dict[str, float]
    excluded: dict[str, str]


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
    """The one-thread session that answers single rows and small requests."""
    batch: BatchEngine
    loaded_at: datetime

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if len(features) >= BATCH_MIN_ROWS:
            return self.batch.predict_proba(features)
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
        batch=choose_batch_engine(store, version, model, data, width),
        loaded_at=datetime.now(UTC),
    )


def choose_batch_engine(
    store: ArtifactStore, version: dict, model: OnnxModel, onnx_bytes: bytes, width: int
) -> BatchEngine:
    """The fastest agreeing batch engine of: the one-thread session, an onnxruntime session
    on every core, and the native model (its file verified against the registry's SHA-256
    like the ONNX file; a version without a usable native file is served by onnxruntime)."""
    candidates: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "onnxruntime 1 thread": model.predict_proba,
        "onnxruntime all cores": OnnxModel(onnx_bytes, intra_op_threads=0).predict_proba,
    }
    excluded: dict[str, str] = {}
    try:
        family = get_family(version["family"])
        native = family.load_native(
            store.get_bytes(version["native_uri"], version["native_sha256"])
        )
        candidates["native"] = lambda x: family.predict_proba(native, x)
    except Exception as exc:  # the ONNX file serves; the native one only speeds batches up
        excluded["native"] = f"{type(exc).__name__}: {exc}"
        log.warning(
            "%s v%s: native model unavailable for batches (%s)",
            version["family"],
            version["version"],
            excluded["native"],
        )
    x = np.random.default_rng(0).normal(size=(CALIBRATION_ROWS, width)).astype(np.float32)
    reference = model.predict_proba(x)
    agreeing: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name, predict in candidates.items():
        try:  # also the warm-up: thread pools, buffers
            gap = float(np.max(np.abs(np.asarray(predict(x), dtype=np.float64) - reference)))
        except Exception as exc:
            excluded[name] = f"{type(exc).__name__}: {exc}"
            continue
        if gap > BATCH_PARITY:
            excluded[name] = f"differs from the ONNX file by {gap:.2e} > {BATCH_PARITY:g}"
        else:
            agreeing[name] = predict
    runs: dict[str, list[float]] = {name: [] for name in agreeing}
    order = np.random.default_rng(0)
    for _ in range(CALIBRATION_RUNS):
        # Interleaved, in a new order each round, each run after a pause: a native library's
        # OpenMP threads spin for a while after a call and would slow whichever candidate ran
        # next (a rotated fixed order keeps each one's predecessor), and a shared machine's
        # slow spells would hit one candidate.
        for name in order.permutation(list(agreeing)):
            if name in excluded:
                continue
            time.sleep(CALIBRATION_PAUSE_SECONDS)
            started = time.perf_counter()
            try:
                agreeing[name](x)
            except Exception as exc:
                excluded[name] = f"{type(exc).__name__}: {exc}"
                continue
            runs[name].append((time.perf_counter() - started) * 1000)
    # The fastest of a candidate's runs: noise on a shared machine only ever adds time, and a
    # slow spell during three runs once made the one-thread session look fastest for a
    # LightGBM version (its batches then ran 1.76x slower than onnxruntime on every core).
    milliseconds = {name: float(np.min(ms)) for name, ms in runs.items() if name not in excluded}
    fastest = min(milliseconds, key=milliseconds.__getitem__)
    return BatchEngine(
        name=fastest,
        predict_proba=candidates[fastest],
        milliseconds=milliseconds,
        excluded=excluded,
    )
