"""How fast the signal service answers (performance goal P2), per family, side by side.

Set-up: a throwaway database (on ALPHAPLUS_DATABASE_URL or the embedded server, dropped at
the end) with simulated daily bars; per family two versions trained by the real
``train_model`` Dagster job (ONNX and native files in the artifact store, registered, gates
run), the second made champion by a real promotion. Everything below serves them as the
service does: loaded from the registry, the ONNX file's checksum verified.

Measured, in one run:
  single row  ``SignalService.answer`` on one row (champion only: no challenger, probation
              0) vs the library's native predict on the native model (``family.predict_proba``,
              the library's default threads) vs bare ``session.run`` on the service's own
              onnxruntime session (one intra-op thread, no output conversion). The three are
              interleaved in rounds after a warm-up, in a new random order every round, each
              block after a pause (native thread pools spin after a call and would slow the
              next block); p50/p99 in µs (time.perf_counter_ns).
              Goal: service p99 ≤ 150 µs for every family.
  HTTP        ``POST /v1/signals`` for one symbol and one family over loopback to the real
              ``alphaplus-mlops serve`` (a subprocess: uvicorn, the prediction log on), N
              sequential requests on one kept-alive connection from a client process that
              imports only the standard library (so this process's heap and collector stay
              out of it); p50/p99 in ms. Goal: p99 ≤ 5 ms. Beside it, GET /healthz on the same
              server and connection (what any request costs there), and, timed in this
              process on the same database: ``serving_features`` for that one
              symbol alone (a warm feature cache told of bar changes, as the server's) and the
              model's answer, so a request splits into features, model and the rest
              (HTTP, JSON, logging). The served models have just been promoted,
              so the previous champion answers in shadow too, as after any promotion.
  throughput  the first family's HTTP requests from 1, 2, 4 and 8 client processes at once,
              each on its own connection: requests/s of the one server process (all
              requests over the longest client's time) and p50/p99 ms; the clients share
              the machine's cores with the server, so this is a floor for one replica.
  hot swap    a thread promotes / rolls back the family's champion every second (real
              ``store.promotion.promote`` / ``rollback``; the service LISTENs and swaps)
              while this thread calls ``answer`` on one row as fast as it can (champion only,
              probation 0); p99 and errors (an exception, a failed swap, an answer not by the
              champion of one of the two versions) vs the same loop just before without
              swaps. Goal: p99 ≤ 2× steady, no error.
  batch       10,000 rows: ``SignalService.answer`` (which scores a batch with the engine
              its version found fastest when it was loaded) vs native predict vs onnxruntime
              (the service's one-thread session, and a session with onnxruntime's default
              threads); median ms, and the service's ratio to the path fastest at the
              median, paired by round (the median of the per-round ratios). Beside it the
              same ratio of native predict to itself (called as a second path, "A/A"): the
              bench's own noise floor. Goal: the service no slower than the fastest other.
The last line is the worst family's service single-row p99.
Run: .venv/bin/python bench/serving_latency.py [--calls N] [--requests N] [--swap-seconds S]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import onnxruntime as ort
import psycopg

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.families import family_names, get_family
from alphaplus_mlops.serving.features import FeatureCache, serving_features
from alphaplus_mlops.serving.service import SignalService
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database, resolve_database_url, with_database
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.promotion import promote, rollback
from alphaplus_mlops.store.versions import get_model_version, version_trained_in_run

BATCH_ROWS = 10_000
BATCH_NOISE = 0.05
"""The service scores a batch with one of the measured engines (chosen when the version was
loaded) plus a few microseconds of its own, so "no slower" is read within this noise."""


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def timed_ns(call, n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        started = clock()
        call()
        out.append(clock() - started)
    return out


def shuffled_rounds(paths: dict, rounds: int, calls: int, pause: float) -> dict[str, list[int]]:
    """{path: latencies in ns}: ``calls`` calls of each path per round, in a new random
    order every round (seeded), each block after ``pause`` seconds. The thread pools of the
    block before (OpenMP, onnxruntime) spin for a while after their work and slow whichever
    block follows them (onnxruntime after native LightGBM ran 1.5x slower), so no path may
    always follow the same one: a rotated fixed order kept every path's predecessor, and
    there the service's batch ran 1.09-1.14x native on the very engine it was calling."""
    samples: dict[str, list[int]] = {name: [] for name in paths}
    order = np.random.default_rng(20261128)
    for _ in range(rounds):
        for name in order.permutation(list(paths)):
            time.sleep(pause)
            samples[name] += timed_ns(paths[name], calls)
    return samples


def train_versions(defs, db, family: str, symbols: list[str], rounds: list[int]) -> list[dict]:
    instance = dg.DagsterInstance.ephemeral()
    versions = []
    for n in rounds:
        result = defs.resolve_job_def("train_model").execute_in_process(
            partition_key=family,
            run_config={
                "loggers": {"console": {"config": {"log_level": "ERROR"}}},
                "ops": {
                    "training_dataset": {"config": {"symbols": symbols}},
                    "trained_model": {
                        "config": {"n_estimators": n, "cv_splits": 2, "early_stopping_rounds": 0}
                    },
                },
            },
            instance=instance,
        )
        assert result.success
        version = version_trained_in_run(db, result.run_id)
        if not gate_status(db, str(version["id"])).all_passed:
            raise SystemExit(f"{family} v{version['version']} failed a gate: cannot swap it")
        versions.append(version)
    return versions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def family_single_row(service, store, family: str, version: dict, rows, calls, rounds) -> dict:
    """{path: latencies in ns} of one family, the three paths interleaved in rounds, each
    cycling through the same rows (views made beforehand)."""
    impl = get_family(family)
    native = impl.load_native(store.get_bytes(version["native_uri"], version["native_sha256"]))
    served = service.models()[family].champion
    assert served.id == str(version["id"])
    session, feed, output = served.model.session, served.model.input_name, served.model.proba_output
    views = [rows[i : i + 1, : served.n_features] for i in range(len(rows))]
    # Every answer here is the champion's alone: a shadow would double the service path.
    assert [a.role for a in service.answer(family, views[0])] == ["champion"]
    service_rows, native_rows, ort_rows = (itertools.cycle(views) for _ in range(3))
    paths = {
        "service": lambda: service.answer(family, next(service_rows)),
        "native": lambda: impl.predict_proba(native, next(native_rows)),
        "onnxruntime": lambda: session.run([output], {feed: next(ort_rows)}),
    }
    for call in paths.values():
        timed_ns(call, 1000)  # warm-up
    return shuffled_rounds(paths, rounds, calls // rounds, pause=0.2)


def family_batch(service, store, family: str, version: dict, batch, repeat: int) -> dict:
    """{path: ms per round} for one batch, the paths interleaved (one call each per round)."""
    impl = get_family(family)
    native = impl.load_native(store.get_bytes(version["native_uri"], version["native_sha256"]))
    m = service.models()[family].champion.model
    options = ort.SessionOptions()
    options.log_severity_level = 3
    default_session = ort.InferenceSession(
        store.get_bytes(version["onnx_uri"], version["onnx_sha256"]),
        options,
        providers=["CPUExecutionProvider"],
    )
    feed = {m.input_name: batch}
    paths = {
        "service": lambda: service.answer(family, batch),
        "native": lambda: impl.predict_proba(native, batch),
        "native again": lambda: impl.predict_proba(native, batch),
        "ort1": lambda: m.session.run([m.proba_output], feed),
        "ortN": lambda: default_session.run([m.proba_output], feed),
    }
    for call in paths.values():
        timed_ns(call, 2)
    samples = shuffled_rounds(paths, repeat, 1, pause=0.05)
    return {k: np.asarray(v) / 1e6 for k, v in samples.items()}


# The HTTP client: a separate Python process that imports only the standard library and
# keeps one connection open, so the latencies are the server's and loopback's, not those of
# this process's heap (Dagster, pandas) and its collector. Prints nanoseconds as JSON.
HTTP_CLIENT = r"""
import gc, http.client, json, sys, time
port, method, path, body, n = sys.argv[1:]
port, n = int(port), int(n)
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"content-type": "application/json"}
def one():
    conn.request(method, path, body.encode() if body else None, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return data
for _ in range(50):
    one()
gc.disable()
ns = []
for _ in range(n):
    started = time.perf_counter_ns()
    data = one()
    ns.append(time.perf_counter_ns() - started)
print(json.dumps({"ns": ns, "last": json.loads(data)}))
"""


def http_requests(port: int, method: str, path: str, body: dict | None, n: int) -> dict:
    """{"ns": [latency per request], "last": the last answer} from the lean client."""
    payload = json.dumps(body) if body else ""
    done = subprocess.run(
        [sys.executable, "-c", HTTP_CLIENT, str(port), method, path, payload, str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"HTTP client failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def concurrent_http(port: int, body: dict, clients: int, per_client: int) -> dict:
    """``clients`` lean client processes at once, each on its own connection: requests/s
    (all requests over the longest client's time), p50/p99 ms over all requests."""
    payload = json.dumps(body)
    command = [sys.executable, "-c", HTTP_CLIENT, str(port), "POST", "/v1/signals", payload]
    running = [
        subprocess.Popen([*command, str(per_client)], stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    outputs = [process.communicate()[0] for process in running]
    if any(process.returncode for process in running):
        raise SystemExit("an HTTP client failed")
    ns = [json.loads(out)["ns"] for out in outputs]
    every = [x for client in ns for x in client]
    return {
        "rps": len(every) / (max(sum(client) for client in ns) / 1e9),
        "p50": pct(every, 50) / 1e6,
        "p99": pct(every, 99) / 1e6,
    }


def answer_for(service, family: str, row, seconds: float, valid_ids: set[str]):
    """Calls answer on one row for ``seconds``: latencies (ns) and errors."""
    latencies, errors = [], []
    clock = time.perf_counter_ns
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(200):
            started = clock()
            try:
                answers = service.answer(family, row)
                if answers[0].role != "champion" or answers[0].version_id not in valid_ids:
                    errors.append(f"answered by {answers[0].role} {answers[0].version_id}")
            except Exception as exc:
                errors.append(repr(exc))
            latencies.append(clock() - started)
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(family_names()))
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--bars", type=int, default=2520, help="Stored daily bars per symbol.")
    parser.add_argument("--rounds", type=int, default=100, help="Boosting rounds (v2; v1 60).")
    parser.add_argument("--calls", type=int, default=20_000, help="Single-row calls per path.")
    parser.add_argument("--requests", type=int, default=2000, help="HTTP requests per family.")
    parser.add_argument("--swap-seconds", type=float, default=10.0)
    parser.add_argument("--batch-repeat", type=int, default=60)
    args = parser.parse_args()
    families = args.families.split(",")

    server = resolve_database_url(Settings.from_env())
    name = f"apm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    db = Database(url, max_size=6)
    serve_process = None
    home = Path(tempfile.mkdtemp(prefix="apm-bench-"))
    try:
        migrate(url)
        settings = Settings(database_url=url, home=home)
        symbols = [f"BN{i:02d}" for i in range(args.symbols)]
        config = SimulationConfig(n_bars=args.bars, break_fraction=0.95, signal_strength=0.40)
        upsert_bars(db, simulate_market(symbols, seed=11, config=config).bars, source="bench")
        defs = build_definitions(
            settings, build_resources(settings, PostgresResource(database_url=url))
        )
        store = LocalArtifactStore(settings.artifacts_dir)
        started = time.monotonic()
        pairs = {}
        for family in families:
            first, second = train_versions(
                defs, db, family, symbols, [max(args.rounds * 3 // 5, 1), args.rounds]
            )
            if get_model_version(db, str(second["id"]))["status"] != "champion":
                promote(db, store, str(second["id"]), actor="bench", reason="bench set-up")
            pairs[family] = (
                get_model_version(db, str(first["id"])),
                get_model_version(db, str(second["id"])),
            )
        width = len(pairs[families[0]][1]["feature_names"])
        print(
            f"{len(symbols)} symbols × {args.bars} simulated daily bars, {width} features; per "
            f"family 2 versions trained by train_model ({max(args.rounds * 3 // 5, 1)} and "
            f"{args.rounds} rounds) in {time.monotonic() - started:.0f} s; "
            f"{os.cpu_count()} cores, shared"
        )
        champions = {f: pair[1] for f, pair in pairs.items()}
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(512, width)).astype(np.float32)

        # HTTP first, against the real server in its own process.
        port = free_port()
        serve_process = subprocess.Popen(
            [str(Path(sys.executable).with_name("alphaplus-mlops")), "serve", "--port", str(port)],
            env={**os.environ, "ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2).json()
                if sorted(health["families"]) == sorted(families):
                    break
            except httpx.HTTPError:
                pass
            if serve_process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("alphaplus-mlops serve did not come up")
            time.sleep(0.2)
        http, floor = {}, {}
        for family in families:
            body = {"family": family, "symbols": [symbols[0]]}
            http[family] = http_requests(port, "POST", "/v1/signals", body, args.requests)
            floor[family] = http_requests(port, "GET", "/healthz", None, args.requests)["ns"]
        # One replica's capacity: the first family's requests from 1, 2, 4 and 8 clients at
        # once, each with its own connection (the same requests as above, logged too).
        loads = {
            clients: concurrent_http(
                port,
                {"family": families[0], "symbols": [symbols[0]]},
                clients,
                max(args.requests // clients, 100),
            )
            for clients in (1, 2, 4, 8)
        }
        serve_process.terminate()
        serve_process.wait(timeout=30)
        serve_process = None

        # As the server: a feature cache told of bar changes by the service's LISTEN.
        cache = FeatureCache()
        with SignalService(
            db, store, probation_seconds=0, poll_seconds=60, feature_cache=cache
        ) as service:
            deadline = time.monotonic() + 10
            while not cache.notified and time.monotonic() < deadline:
                time.sleep(0.05)
            features_ns = {}
            for family in families:
                champion = service.models()[family].champion
                call = lambda c=champion: serving_features(  # noqa: E731
                    db,
                    [symbols[0]],
                    feature_names=list(c.feature_names),
                    feature_version=c.feature_version,
                    cache=cache,
                )
                timed_ns(call, 5)
                features_ns[family] = timed_ns(call, max(args.requests // 3, 20))

            single = {
                f: family_single_row(service, store, f, champions[f], rows, args.calls, 5)
                for f in families
            }

            print("\nsingle row, in process (µs), interleaved rounds; goal: service p99 ≤ 150")
            print(
                f"{'family':<9} {'service p50':>11} {'p99':>7} {'native p50':>10} {'p99':>8} "
                f"{'onnxrt p50':>10} {'p99':>7} {'svc-ort p50':>11} {'met':>4}"
            )
            worst = 0.0
            for family, s in single.items():
                p = {k: (pct(v, 50) / 1000, pct(v, 99) / 1000) for k, v in s.items()}
                worst = max(worst, p["service"][1])
                print(
                    f"{family:<9} {p['service'][0]:>11.1f} {p['service'][1]:>7.1f} "
                    f"{p['native'][0]:>10.1f} {p['native'][1]:>8.1f} "
                    f"{p['onnxruntime'][0]:>10.1f} {p['onnxruntime'][1]:>7.1f} "
                    f"{p['service'][0] - p['onnxruntime'][0]:>11.1f} "
                    f"{'yes' if p['service'][1] <= 150 else 'NO':>4}"
                )

            print(
                f"\nHTTP POST /v1/signals, one symbol, one family, {args.requests} sequential "
                "requests from a lean client process (ms); goal: p99 ≤ 5. Beside it, GET "
                "/healthz on the same server and connection: what any request costs there"
            )
            print(
                f"{'family':<9} {'p50':>6} {'p99':>6} {'healthz p50':>11} {'p99':>6} "
                f"{'features p50':>12} {'model p50':>9} {'rest p50':>8} {'answered by':>18} "
                f"{'met':>4}"
            )
            for family, answered in http.items():
                ns = answered["ns"]
                roles = [a["role"] for a in answered["last"]]
                total, p99 = pct(ns, 50) / 1e6, pct(ns, 99) / 1e6
                feats = pct(features_ns[family], 50) / 1e6
                # One model call per answering role (champion, and the previous champion in
                # shadow while the promotion is in probation), at the in-process p50.
                model = len(roles) * pct(single[family]["service"], 50) / 1e6
                print(
                    f"{family:<9} {total:>6.2f} {p99:>6.2f} {pct(floor[family], 50) / 1e6:>11.2f} "
                    f"{pct(floor[family], 99) / 1e6:>6.2f} {feats:>12.2f} {model:>9.3f} "
                    f"{total - feats - model:>8.2f} {'+'.join(roles):>18} "
                    f"{'yes' if p99 <= 5 else 'NO':>4}"
                )

            print(
                f"\none replica's throughput: POST /v1/signals ({families[0]}, one symbol) from "
                "N lean client processes at once, each on its own connection, on the same "
                f"{os.cpu_count()} cores as the server (ms)"
            )
            print(f"{'clients':>7} {'requests/s':>10} {'p50':>6} {'p99':>6}")
            for clients, load in loads.items():
                print(f"{clients:>7} {load['rps']:>10.0f} {load['p50']:>6.2f} {load['p99']:>6.2f}")

            print(
                f"\nhot swap: a promotion or rollback every second, {args.swap_seconds:.0f} s "
                "per window, one row per call (µs); goal: p99 ≤ 2× steady, 0 errors"
            )
            print(
                f"{'family':<9} {'steady p99':>10} {'swapping p99':>12} {'ratio':>6} "
                f"{'calls':>8} {'swaps':>5} {'errors':>6} {'met':>4}"
            )
            for family in families:
                first, second = pairs[family]
                valid = {str(first["id"]), str(second["id"])}
                row = rows[:1]
                steady, steady_errors = answer_for(service, family, row, args.swap_seconds, valid)
                stop = threading.Event()
                done, failures = [], []
                swaps_before = service.metrics()["swaps"]
                swapper = threading.Thread(
                    target=swapper_loop,
                    args=(db, store, family, str(second["id"]), stop, done, failures),
                )
                swapper.start()
                try:
                    swapping, errors = answer_for(service, family, row, args.swap_seconds, valid)
                finally:
                    stop.set()
                    swapper.join()
                swaps = service.metrics()["swaps"] - swaps_before
                errors = errors + steady_errors + failures
                s99, w99 = pct(steady, 99) / 1000, pct(swapping, 99) / 1000
                met = w99 <= 2 * s99 and not errors
                print(
                    f"{family:<9} {s99:>10.1f} {w99:>12.1f} {w99 / s99:>6.2f} "
                    f"{len(swapping):>8} {swaps:>5} {len(errors):>6} {'yes' if met else 'NO':>4}"
                )
                for error in errors[:3]:
                    print(f"    {error}")
                # Leave the newest version champion again for what follows.
                if get_model_version(db, str(second["id"]))["status"] != "champion":
                    promote(db, store, str(second["id"]), actor="bench", reason="bench reset")

            print(
                f"\nbatch of {BATCH_ROWS:,} rows (median ms of {args.batch_repeat}, interleaved; "
                "svc/fastest: the median of each round's ratio to the path fastest at the "
                "median; A/A: native's ratio to itself, the noise floor); goal: service ≤ the "
                f"fastest other (within {BATCH_NOISE:.0%}: the service runs one of them)"
            )
            print(
                f"{'family':<9} {'service':>8} {'native':>8} {'ort 1 thr':>9} "
                f"{'ort default':>11} {'svc/fastest':>11} {'A/A':>5} "
                f"{'batch engine (chosen at load)':>30} {'met':>4}"
            )
            batch = rng.normal(size=(BATCH_ROWS, width)).astype(np.float32)
            for family in families:
                rounds = family_batch(
                    service, store, family, champions[family], batch, args.batch_repeat
                )
                ms = {k: float(np.median(v)) for k, v in rounds.items()}
                fastest = min(("native", "ort1", "ortN"), key=ms.__getitem__)
                # Paired: the service against the fastest path in the same round, so that a
                # slow spell of the shared machine weighs on both sides of each ratio.
                ratio = float(np.median(rounds["service"] / rounds[fastest]))
                control = float(np.median(rounds["native again"] / rounds["native"]))
                engine = service.models()[family].champion.batch.name
                print(
                    f"{family:<9} {ms['service']:>8.2f} {ms['native']:>8.2f} {ms['ort1']:>9.2f} "
                    f"{ms['ortN']:>11.2f} {ratio:>11.2f} {control:>5.2f} {engine:>30} "
                    f"{'yes' if ratio <= 1 + BATCH_NOISE else 'NO':>4}"
                )
        print(f"P2 worst single-row p99 us: {worst:.1f}")
    finally:
        if serve_process is not None:
            serve_process.terminate()
            serve_process.wait(timeout=30)
        db.close()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


def swapper_loop(db, store, family, newest_id, stop, done, failures) -> None:
    """Every second: roll back to the earlier champion, then promote the newest again."""
    back = True
    while not stop.wait(1.0):
        try:
            if back:
                rollback(db, store, family, actor="bench", reason="hot-swap bench")
            else:
                promote(db, store, newest_id, actor="bench", reason="hot-swap bench")
            back = not back
            done.append(time.monotonic())
        except Exception as exc:  # counted as errors
            failures.append(f"swap: {exc!r}")


if __name__ == "__main__":
    main()
