"""The signal service over HTTP (FastAPI): signals, batch scoring, what serves, health and
Prometheus metrics. Every signal a request gets is logged, champion and shadows alike.

Malformed requests get a 4xx that names the problem; only a fault of the service itself
is a 500. Handlers are plain functions, which FastAPI runs on its thread pool where the
database and onnxruntime calls may block; the one exception is a /v1/signals request that
the feature cache answers without the database, served on the event loop.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from alphaplus_mlops.reports.dashboard import render_dashboard
from alphaplus_mlops.serving.features import (
    MAX_SYMBOLS,
    CacheMiss,
    FeatureCache,
    FeatureRequestError,
    ServedFeatures,
    serving_features,
    validate_rows,
)
from alphaplus_mlops.serving.prediction_log import (
    PredictionLog,
    PredictionRecord,
    records_from_answers,
)
from alphaplus_mlops.serving.service import FeatureWidthError, NoChampionError, SignalService
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.fleet import latest_dashboard_snapshot
from alphaplus_mlops.store.promotion import serving_at

#: Request bodies larger than this are refused (413) before they are parsed.
DEFAULT_MAX_BODY_BYTES = 1_000_000


class SignalsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str | None = Field(default=None, description="One family; default: every one.")
    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS)
    as_of: datetime | None = Field(
        default=None, description="Signal for the last bar at or before this time."
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    rows: list = Field(description="Feature rows in the champion's feature order.")


class _ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HttpCounters:
    """Requests and their seconds, per path and status, for /metrics."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count: dict[tuple[str, int], int] = defaultdict(int)
        self.seconds: dict[tuple[str, int], float] = defaultdict(float)

    def add(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.count[path, status] += 1
            self.seconds[path, status] += seconds

    def snapshot(self) -> list[tuple[str, int, int, float]]:
        with self._lock:
            return [(p, s, n, self.seconds[p, s]) for (p, s), n in sorted(self.count.items())]


class CountRequests:
    """Counts each HTTP request and its seconds by path and status (a plain ASGI wrapper:
    Starlette's BaseHTTPMiddleware costs about a millisecond a request)."""

    def __init__(self, app, counters: HttpCounters):
        self.app, self.counters = app, counters

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # an exception before the response starts is answered 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.counters.add(scope["path"], status, time.perf_counter() - started)


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, whether or not it declares its
    length, before the application reads it whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": f"request body over {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


def create_app(
    service: SignalService,
    db: Database,
    prediction_log: PredictionLog | None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    feature_cache: FeatureCache | None = None,
) -> FastAPI:
    app = FastAPI(title="alphaplus-mlops signals", version="1")
    counters = HttpCounters()
    if feature_cache is None:
        # Not `or`: an empty cache is falsy (it has a length), and a fresh one here would
        # never hear of bar changes, so every request would query the database.
        feature_cache = (
            service.feature_cache if service.feature_cache is not None else FeatureCache()
        )

    @app.exception_handler(_ServiceError)
    def service_error(request: Request, exc: _ServiceError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    def family_models(family: str):
        served = service.models().get(family)
        if served is None or served.champion is None:
            known = sorted(f for f, m in service.models().items() if m.champion is not None)
            raise _ServiceError(404, f"no champion serves family {family!r}; serving: {known}")
        return served

    @app.post("/v1/signals", response_model=list[dict])
    async def signals(body: SignalsRequest) -> JSONResponse:
        # Served on the event loop when every symbol's features are cached and the cache is
        # told of bar changes (a fraction of a millisecond: a hop to the thread pool would
        # cost more than the work); otherwise on the thread pool, where the reads block.
        try:
            return answer_signals(body, cached_only=True)
        except CacheMiss:
            return await run_in_threadpool(answer_signals, body, cached_only=False)

    def answer_signals(body: SignalsRequest, *, cached_only: bool) -> JSONResponse:
        families = (
            [body.family]
            if body.family
            else sorted(f for f, m in service.models().items() if m.champion is not None)
        )
        if not families:
            raise _ServiceError(503, "no family has a champion yet")
        champions = {family: family_models(family).champion for family in families}
        # Every family's features before any answer, so that a cache miss leaves nothing
        # half done; families trained on the same features share one computation.
        computed: dict[tuple, ServedFeatures] = {}
        try:
            for champion in champions.values():
                key = (champion.feature_names, champion.feature_version)
                if key not in computed:
                    computed[key] = serving_features(
                        db,
                        body.symbols,
                        body.as_of,
                        feature_names=list(champion.feature_names),
                        feature_version=champion.feature_version or "",
                        cache=feature_cache,
                        cached_only=cached_only,
                    )
        except FeatureRequestError as exc:
            raise _ServiceError(422, str(exc)) from exc
        request_id = str(uuid.uuid4())
        out: list[dict] = []
        records: list[PredictionRecord] = []
        for family, champion in champions.items():
            features = computed[champion.feature_names, champion.feature_version]
            try:
                answers = service.answer(family, features.x, {"request_id": request_id})
            except NoChampionError as exc:
                raise _ServiceError(404, str(exc)) from exc
            for answer in answers:
                for i, symbol in enumerate(features.symbols):
                    out.append(
                        {
                            "family": family,
                            "version": answer.version,
                            "role": answer.role,
                            "symbol": symbol,
                            "bar_ts": features.bar_ts[i].isoformat(),
                            "probability": float(answer.probability[i]),
                            "signal": int(answer.signal[i]),
                        }
                    )
            records += records_from_answers(answers, features.symbols, features.bar_ts, request_id)
        if prediction_log is not None:
            prediction_log.log(records)
        # A ready response skips FastAPI's validation and re-encoding of the return value.
        return JSONResponse(out)

    @app.post("/v1/predict")
    def predict(body: PredictRequest) -> dict:
        """Raw feature rows scored by the champion and the shadows (not logged: the rows
        name no symbol or bar)."""
        champion = family_models(body.family).champion
        try:
            x = validate_rows(body.rows, champion.n_features)
            answers = service.answer(body.family, x)
        except (FeatureRequestError, FeatureWidthError) as exc:
            raise _ServiceError(422, str(exc)) from exc
        except NoChampionError as exc:
            raise _ServiceError(404, str(exc)) from exc
        return {
            "family": body.family,
            "rows": int(x.shape[0]),
            "answers": [
                {
                    "version": a.version,
                    "role": a.role,
                    "probability": np.asarray(a.probability, dtype=float).tolist(),
                    "signal": np.asarray(a.signal, dtype=int).tolist(),
                }
                for a in answers
            ],
        }

    @app.get("/v1/models")
    def models() -> dict:
        """What serves now per family and role, and since when and why (the ledger)."""
        now = datetime.now(UTC)
        out = {}
        for family, served in sorted(service.models().items()):
            entry = serving_at(db, family, now)
            out[family] = {
                role: {
                    "version": model.version,
                    "version_id": model.id,
                    "loaded_at": model.loaded_at.isoformat(),
                    "batch_engine": model.batch.name,
                    "batch_calibration_ms": model.batch.milliseconds,
                }
                for role, model in served.served()
            }
            if entry is not None:
                out[family]["champion_since"] = {
                    "at": entry["recorded_at"].isoformat(),
                    "action": entry["action"],
                    "actor": entry["actor"],
                    "reason": entry["reason"],
                }
        return out

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        """Fleet health from the latest ml_ops_dashboard snapshot, as a page."""
        return HTMLResponse(render_dashboard(latest_dashboard_snapshot(db), datetime.now(UTC)))

    @app.get("/v1/dashboard")
    def dashboard_json() -> dict:
        """The latest ml_ops_dashboard snapshot (null before the first)."""
        snapshot = latest_dashboard_snapshot(db)
        if snapshot is None:
            return {"snapshot": None}
        return {
            "snapshot_at": snapshot["snapshot_at"].isoformat(),
            "fleet": snapshot["fleet"],
            "summary": snapshot["summary"],
        }

    @app.get("/healthz")
    def healthz() -> dict:
        log_stats = prediction_log.stats() if prediction_log is not None else {}
        return {
            "status": "ok",
            "families": sorted(f for f, m in service.models().items() if m.champion),
            "listening": service.listening,
            "prediction_log_database_up": log_stats.get("database_up"),
        }

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            prometheus_text(service, prediction_log, counters, feature_cache),
            media_type="text/plain; version=0.0.4",
        )

    return BodyLimit(CountRequests(app, counters), max_body_bytes)


def prometheus_text(
    service: SignalService,
    prediction_log: PredictionLog | None,
    counters: HttpCounters,
    feature_cache: FeatureCache,
) -> str:
    """The Prometheus text exposition of the service's, the log's and HTTP's counters."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    served = service.metrics()
    metric(
        "alphaplus_answers_total",
        "counter",
        "Model answers given, per family and role.",
        [
            (f'{{family="{f}",role="{r}"}}', n)
            for f, roles in sorted(served["requests"].items())
            for r, n in sorted(roles.items())
        ],
    )
    metric(
        "alphaplus_answer_latency_microseconds_sum",
        "counter",
        "Model time spent answering, per family and role.",
        [
            (f'{{family="{f}",role="{r}"}}', us)
            for f, roles in sorted(served["latency_us_sum"].items())
            for r, us in sorted(roles.items())
        ],
    )
    for name in ("swaps", "load_failures", "refreshes", "notifications"):
        metric(f"alphaplus_model_{name}_total", "counter", f"Model {name}.", [("", served[name])])
    http = counters.snapshot()
    metric(
        "alphaplus_http_requests_total",
        "counter",
        "HTTP requests, per path and status.",
        [(f'{{path="{p}",status="{s}"}}', n) for p, s, n, _ in http],
    )
    metric(
        "alphaplus_http_request_seconds_sum",
        "counter",
        "Seconds spent on HTTP requests, per path and status.",
        [(f'{{path="{p}",status="{s}"}}', sec) for p, s, _, sec in http],
    )
    metric(
        "alphaplus_feature_cache_symbols_total",
        "counter",
        "Symbols whose features came from the cache (hit) or were computed (miss).",
        [('{result="hit"}', feature_cache.hits), ('{result="miss"}', feature_cache.misses)],
    )
    metric(
        "alphaplus_feature_cache_notified",
        "gauge",
        "1 while the feature cache hears of bar changes (cached requests query nothing).",
        [("", int(feature_cache.notified))],
    )
    if prediction_log is not None:
        stats = prediction_log.stats()
        metric(
            "alphaplus_prediction_log_queue_depth",
            "gauge",
            "Predictions waiting to be written.",
            [("", stats["queue_depth"])],
        )
        for name in ("written", "spooled", "replayed", "lost", "rejected"):
            metric(
                f"alphaplus_prediction_log_{name}_total",
                "counter",
                f"Predictions {name}.",
                [("", stats[name])],
            )
    return "\n".join(lines) + "\n"
