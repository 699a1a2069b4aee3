"""The in-process signal service: per family, the champion answers and the challenger and
(during probation after a promotion) the previous champion answer in shadow; models are
swapped in while requests keep flowing.

How a change reaches a request:

* ``refresh()`` reads what should serve (store.serving_state), loads the versions it does
  not hold yet on a worker thread (file checksum verified against the registry, session
  opened, warmed up), then replaces the whole ``{family: FamilyModels}`` mapping under a
  lock. ``answer()`` takes that mapping once, so a request in flight finishes on the models
  it started with, and no request ever waits for a load.
* A watcher thread LISTENs on ``alphaplus_serving`` (sql/011 NOTIFYs on ledger rows and
  champion/challenger status changes) and refreshes on each notification; it also polls
  every ``poll_seconds`` anyway, and while its connection is down it only polls and tries
  to LISTEN again. On the same connection it LISTENs on ``alphaplus_bars`` (sql/015) for
  the feature cache it was given, which relies on those notifications only while the
  connection is up.
* A version that cannot be loaded (missing file, failed checksum, a file onnxruntime
  refuses) is never swapped in: the slot keeps what it served, an alert
  ``serving_load_failed`` is raised, the error is kept in ``errors``, and the same version
  is not tried again by later refreshes (only a different version is).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np

from alphaplus_mlops.core.backtest import positions_from_probability
from alphaplus_mlops.serving.features import FeatureCache
from alphaplus_mlops.serving.models import ServedModel, load_served_model
from alphaplus_mlops.store.alerts import fire_alert
from alphaplus_mlops.store.artifacts import ArtifactStore
from alphaplus_mlops.store.db import Database, connect
from alphaplus_mlops.store.serving_state import ROLES, desired_serving

log = logging.getLogger(__name__)

CHANNEL = "alphaplus_serving"
BARS_CHANNEL = "alphaplus_bars"
DEFAULT_PROBATION_SECONDS = 86_400.0
DEFAULT_POLL_SECONDS = 10.0
MAX_ERRORS_KEPT = 100


class NoChampionError(LookupError):
    """The family has no champion loaded, so there is no signal to give."""


class FeatureWidthError(ValueError):
    """The request's rows do not have as many features as the champion takes."""


@dataclass(frozen=True)
class FamilyModels:
    """What serves one family at one moment; replaced whole, never changed in place."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None
    previous: ServedModel | None = None
    """The champion the latest promotion or rollback replaced, during probation."""
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When this snapshot was swapped in."""

    def __post_init__(self) -> None:
        # Every request walks this; the snapshot never changes, so it is built once.
        found = tuple((role, getattr(self, role)) for role in ROLES)
        object.__setattr__(self, "_served", tuple((r, m) for r, m in found if m is not None))

    def served(self) -> tuple[tuple[str, ServedModel], ...]:
        """(role, model) pairs in answer order: champion first, then the shadows."""
        return self._served

    def ids(self) -> tuple[str | None, ...]:
        return tuple(getattr(self, role).id if getattr(self, role) else None for role in ROLES)


@dataclass(frozen=True)
class Answer:
    """One model's answer to one request: one probability and one signal per row."""

    family: str
    version_id: str
    version: int
    role: str
    """champion | challenger | previous"""
    probability: np.ndarray
    """P(y=1) per row, float64."""
    signal: np.ndarray
    """+1 long, -1 short, 0 flat per row (core.backtest.positions_from_probability)."""
    latency_us: float
    """Time of this model's call alone, in microseconds."""


@dataclass(frozen=True)
class LoadError:
    version_id: str
    family: str
    version: int
    role: str
    error: str
    at: datetime


class SignalService:
    """Serves the families' models from the database's registry and the artifact store.

    ``families``: the families to serve (None: every family with a model to serve).
    ``probation_seconds``: how long after a promotion or rollback the replaced champion
    keeps answering in shadow. ``poll_seconds``: the safety-net poll interval, and the
    interval while the notification connection is down. ``band``: the flat band of the
    signal rule. ``on_answers(answers, context)``: called after every request with its
    answers (the prediction log plugs in here); its errors are logged, never raised.
    ``feature_cache``: told of bar changes while the watcher LISTENs (FeatureCache).

    Use as a context manager, or call ``start()`` and ``close()``. ``start()`` loads what
    should serve before it returns.
    """

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        *,
        families: Iterable[str] | None = None,
        probation_seconds: float = DEFAULT_PROBATION_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        band: float = 0.0,
        on_answers: Callable[[list[Answer], Mapping], None] | None = None,
        feature_cache: FeatureCache | None = None,
    ):
        self.db = db
        self.store = store
        self.families = frozenset(families) if families is not None else None
        self.probation_seconds = probation_seconds
        self.poll_seconds = poll_seconds
        self.band = band
        self.on_answers = on_answers
        self.feature_cache = feature_cache
        self._models: Mapping[str, FamilyModels] = MappingProxyType({})
        self._swap_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._failed: dict[str, LoadError] = {}
        self.errors: collections.deque[LoadError] = collections.deque(maxlen=MAX_ERRORS_KEPT)
        self._counters = collections.Counter()
        self._requests: collections.Counter = collections.Counter()
        self._latency_us: collections.Counter = collections.Counter()
        self._loader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="serving-load")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._listen_conn = None
        self.listening = False
        """True while the notification connection is LISTENing."""

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> SignalService:
        self.refresh()
        self._watcher = threading.Thread(target=self._watch, name="serving-watch", daemon=True)
        self._watcher.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._loader.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SignalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Reading ------------------------------------------------------------------------------

    def models(self) -> Mapping[str, FamilyModels]:
        """What serves now, per family (an immutable snapshot)."""
        return self._models

    def metrics(self) -> dict:
        """Counters since start: swaps, load_failures, refreshes, notifications,
        notify_connection_lost, requests and latency_us_sum per family and role."""
        with self._counter_lock:
            out = dict(self._counters)
            requests: dict[str, dict[str, int]] = {}
            latency: dict[str, dict[str, float]] = {}
            for (family, role), n in self._requests.items():
                requests.setdefault(family, {})[role] = n
                latency.setdefault(family, {})[role] = self._latency_us[family, role]
        for name in ("swaps", "load_failures", "refreshes", "notifications"):
            out.setdefault(name, 0)
        out.setdefault("notify_connection_lost", 0)
        out["requests"] = requests
        out["latency_us_sum"] = latency
        out["listening"] = self.listening
        return out

    def _count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[name] += n

    # Answering ----------------------------------------------------------------------------

    def answer(
        self, family: str, features: np.ndarray, context: Mapping | None = None
    ) -> list[Answer]:
        """The champion's answer first, then the shadows' (challenger, previous), for the
        rows of ``features`` (n×k, or one row of k). Raises NoChampionError when the family
        has no champion loaded and FeatureWidthError when k is not the champion's width.
        A shadow that fails is left out (and logged); the champion's failure raises.
        ``context`` is passed to ``on_answers`` as is (request id, symbols, bar times)."""
        snapshot = self._models.get(family)  # once: the whole request uses this snapshot
        if snapshot is None or snapshot.champion is None:
            raise NoChampionError(f"no champion is serving family {family!r}")
        x = np.asarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != snapshot.champion.n_features:
            raise FeatureWidthError(
                f"{family} v{snapshot.champion.version} takes rows of "
                f"{snapshot.champion.n_features} features, got shape {tuple(x.shape)}"
            )
        x = np.ascontiguousarray(x)
        answers = []
        for role, served in snapshot.served():
            try:
                started = time.perf_counter_ns()
                p = served.predict_proba(x)
                latency = (time.perf_counter_ns() - started) / 1000.0
            except Exception:
                if role == "champion":
                    raise
                log.exception("%s v%s (%s) failed to answer", family, served.version, role)
                continue
            answers.append(
                Answer(
                    family=family,
                    version_id=served.id,
                    version=served.version,
                    role=role,
                    probability=p,
                    signal=positions_from_probability(p, self.band),
                    latency_us=latency,
                )
            )
        with self._counter_lock:
            for a in answers:
                self._requests[family, a.role] += 1
                self._latency_us[family, a.role] += a.latency_us
        if self.on_answers is not None:
            try:
                self.on_answers(answers, context or {})
            except Exception:
                log.exception("the on_answers hook failed; the answers stand")
        return answers

    # Refreshing ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Bring the served models in line with the database; True when anything was
        swapped. Loads run on a worker thread; requests keep using the old snapshot until
        the swap. Safe to call from any thread (refreshes run one at a time)."""
        with self._refresh_lock:
            if self._stop.is_set():
                return False  # closed: the loader is shut down, nothing more is swapped
            self._count("refreshes")
            desired = desired_serving(self.db, self.probation_seconds)
            if self.families is not None:
                desired = {f: roles for f, roles in desired.items() if f in self.families}
            current = self._models
            held = {served.id: served for fm in current.values() for _, served in fm.served()}
            wanted: dict[str, tuple[str, dict]] = {}
            for roles in desired.values():
                for role in ROLES:
                    row = roles.get(role)
                    vid = str(row["id"]) if row else None
                    if row and vid not in held and vid not in self._failed:
                        wanted.setdefault(vid, (role, row))
            loaded = self._load_all(wanted)
            held.update(loaded)

            new: dict[str, FamilyModels] = {}
            for family in sorted(set(desired) | set(current)):
                roles = desired.get(family, {})
                old = current.get(family, FamilyModels())
                slots = {}
                for role in ROLES:
                    row = roles.get(role)
                    if row is None:
                        slots[role] = None
                    elif str(row["id"]) in held:
                        slots[role] = held[str(row["id"])]
                    else:  # it failed to load: the slot keeps what it served
                        slots[role] = getattr(old, role)
                champion = slots["champion"]
                for shadow in ("challenger", "previous"):
                    if slots[shadow] is not None and champion is not None:
                        if slots[shadow].id == champion.id:
                            slots[shadow] = None  # never answer twice with one model
                if slots["previous"] is not None and slots["challenger"] is not None:
                    if slots["previous"].id == slots["challenger"].id:
                        slots["previous"] = None
                candidate = FamilyModels(**slots)
                if candidate.ids() == old.ids() and family in current:
                    new[family] = old
                elif any(slots.values()):
                    new[family] = candidate
            changed = {f for f in set(new) | set(current) if new.get(f) is not current.get(f)}
            if not changed:
                return False
            with self._swap_lock:
                self._models = MappingProxyType(new)
            self._count("swaps", len(changed))
            for family in sorted(changed):
                fm = new.get(family)
                log.info(
                    "serving %s: %s",
                    family,
                    ", ".join(f"{r} v{m.version}" for r, m in fm.served()) if fm else "nothing",
                )
            return True

    def _load_all(self, wanted: dict[str, tuple[str, dict]]) -> dict[str, ServedModel]:
        if not wanted:
            return {}
        futures = {
            vid: self._loader.submit(load_served_model, self.store, row)
            for vid, (_, row) in wanted.items()
        }
        loaded = {}
        for vid, future in futures.items():
            role, row = wanted[vid]
            try:
                loaded[vid] = future.result()
            except Exception as exc:
                self._load_failed(role, row, exc)
        return loaded

    def _load_failed(self, role: str, row: dict, exc: Exception) -> None:
        error = LoadError(
            version_id=str(row["id"]),
            family=row["family"],
            version=int(row["version"]),
            role=role,
            error=f"{type(exc).__name__}: {exc}",
            at=datetime.now(UTC),
        )
        self._failed[error.version_id] = error
        self.errors.append(error)
        self._count("load_failures")
        message = (
            f"{error.family} v{error.version} should serve as {role} but cannot be loaded "
            f"({error.error}); the previous model keeps serving"
        )
        log.error(message)
        try:
            fire_alert(
                self.db,
                "serving_load_failed",
                message,
                {
                    "key": f"model_versioning:{error.version_id}",
                    "family": error.family,
                    "version": error.version,
                    "role": role,
                    "error": error.error,
                },
            )
        except Exception:
            log.exception("could not record the serving_load_failed alert")

    def failed_versions(self) -> dict[str, LoadError]:
        """Versions that failed to load and are not retried (by version id)."""
        return dict(self._failed)

    def forget_failure(self, version_id: str) -> None:
        """Let the next refresh try ``version_id`` again (after its file was repaired)."""
        self._failed.pop(str(version_id), None)

    # Watching -----------------------------------------------------------------------------

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception:
            # The database may be away; the models loaded keep serving meanwhile.
            log.exception("serving refresh failed; trying again at the next poll")
            self._count("refresh_failures")

    def _watch(self) -> None:
        next_poll = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            if self._listen_conn is None and not self._listen():
                self._stop.wait(self.poll_seconds)
                if not self._stop.is_set():
                    self._safe_refresh()
                next_poll = time.monotonic() + self.poll_seconds
                continue
            # Short waits so close() is honoured promptly.
            timeout = max(0.0, min(0.5, next_poll - time.monotonic()))
            try:
                woke = list(self._listen_conn.notifies(timeout=timeout, stop_after=1))
                if woke:
                    # A promotion sends several notifications; take them all, refresh once.
                    woke += list(self._listen_conn.notifies(timeout=0.05))
            except Exception as exc:
                log.warning("serving notification connection lost (%s); polling", exc)
                self._count("notify_connection_lost")
                self._drop_listen()
                self._safe_refresh()  # whatever changed while we were not listening
                next_poll = time.monotonic() + self.poll_seconds
                continue
            if any(n.channel == BARS_CHANNEL for n in woke) and self.feature_cache is not None:
                self.feature_cache.bars_changed()
            woke = [n for n in woke if n.channel == CHANNEL]
            if woke:
                self._count("notifications", len(woke))
                self._safe_refresh()
            elif time.monotonic() >= next_poll:
                self._safe_refresh()
                next_poll = time.monotonic() + self.poll_seconds
        self._drop_listen()

    def _listen(self) -> bool:
        try:
            conn = connect(self.db.url, autocommit=True)
            conn.execute(f"LISTEN {CHANNEL}")
            conn.execute(f"LISTEN {BARS_CHANNEL}")
        except Exception as exc:
            log.warning("cannot LISTEN %s (%s); polling every %ss", CHANNEL, exc, self.poll_seconds)
            return False
        self._listen_conn = conn
        self.listening = True
        if self.feature_cache is not None:
            self.feature_cache.watch_bars(True)
        # Changes made before the LISTEN took effect sent no notification to us.
        self._safe_refresh()
        return True

    def _drop_listen(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        self.listening = False
        if self.feature_cache is not None:
            self.feature_cache.watch_bars(False)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


__all__ = [
    "Answer",
    "FamilyModels",
    "FeatureWidthError",
    "LoadError",
    "NoChampionError",
    "SignalService",
]
