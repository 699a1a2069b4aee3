"""The prediction log: every answer the signal service gives, champion and shadows, as a
row of ``model_predictions``, written in batches by a background thread.

Serving must not wait on the database, nor stop when it is away:

* :meth:`PredictionLog.log` only puts records on a bounded queue; when the queue is full
  the records go straight to the spool file instead (spilled), so the caller is never held
  up for more than one local append and nothing is dropped.
* The writer thread drains the queue in batches: COPY into a temporary staging table, then
  ``INSERT ... ON CONFLICT (id, bar_ts) DO NOTHING``, in one transaction.
* When the database is unreachable, a batch goes to the spool: an append-only JSON-lines
  file, fsynced after each append, one file per process (rotated). While the database is
  known to be down, batches go to the spool without trying it, and it is tried again every
  ``retry_seconds``. Once it answers, the spool files are replayed, each in one transaction,
  and a file is deleted only after its transaction committed. Spool files left by an
  earlier process are replayed the same way when a log starts.

No loss, no duplicates: a record's id is a uuid made when the record is made, so a batch
written twice (committed, but the answer lost with the connection, then spooled and
replayed; or a file replayed again after a crash between commit and delete) is still one
row per prediction. A file being appended to is held under an exclusive ``flock``, so a
replayer (this process or another sharing the folder) never replays a file that is still
growing; a crashed process's lock is gone with it.

A record the database refuses for what it is (a version id that does not exist, a value
out of range) must not hold its batch hostage: the batch is then written one record at a
time and each refused record is kept, with the database's reason, in a ``rejected-*.jsonl``
file beside the spool (counted as ``rejected``), never retried.
"""

from __future__ import annotations

import fcntl
import json
import logging
import numbers
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
from psycopg_pool import PoolTimeout

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database

_log = logging.getLogger(__name__)

ROLES = ("champion", "challenger", "previous")
SPOOL_PATTERN = "predictions-*.jsonl"
# The database may be unreachable (refused, reset, killed mid-transaction, no pooled
# connection in time); anything else is about the rows themselves.
TRANSIENT_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
CONFLICT_RETRIES = 5
"""Tries of one write that loses a race with another transaction (deadlock, serialization)."""


@dataclass(frozen=True, kw_only=True)
class PredictionRecord:
    """One logged answer. ``id`` is the idempotent key, made with the record."""

    model_version_id: str
    family: str
    role: str
    symbol: str
    bar_ts: datetime
    probability: float
    signal: int
    latency_us: float | None = None
    request_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    predicted_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # Serving hands over what it has (uuid.UUID from a row, numpy scalars from
        # onnxruntime); the record holds plain values, so JSON and COPY take them as they are.
        for name, kind in (("id", str), ("model_version_id", str), ("probability", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.request_id is not None:
            object.__setattr__(self, "request_id", str(self.request_id))
        if self.latency_us is not None:
            object.__setattr__(self, "latency_us", float(self.latency_us))
        signal = self.signal
        if isinstance(signal, numbers.Real) and not isinstance(signal, bool):
            if float(signal).is_integer():  # 1.0 or numpy's int64(1), not 0.5
                object.__setattr__(self, "signal", int(signal))
        # A bad record is the caller's bug: say so where it is made, not in a writer thread.
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.signal not in (-1, 0, 1):
            raise ValueError(f"signal must be -1, 0 or 1, got {self.signal!r}")
        for name in ("bar_ts", "predicted_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")

    def to_json(self) -> str:
        row = asdict(self)
        row["bar_ts"] = self.bar_ts.isoformat()
        row["predicted_at"] = self.predicted_at.isoformat()
        return json.dumps(row, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> PredictionRecord:
        row = json.loads(line)
        row["bar_ts"] = datetime.fromisoformat(row["bar_ts"])
        row["predicted_at"] = datetime.fromisoformat(row["predicted_at"])
        return cls(**row)

    def copy_row(self) -> tuple:
        return (
            self.id,
            self.model_version_id,
            self.family,
            self.role,
            self.symbol,
            self.bar_ts,
            float(self.probability),
            int(self.signal),
            None if self.latency_us is None else float(self.latency_us),
            self.request_id,
            self.predicted_at,
        )


def records_from_answers(
    answers: Iterable, symbols: Sequence[str], bar_ts: Sequence, request_id: str
) -> list[PredictionRecord]:
    """One record per answer (SignalService.Answer) and row: row i is ``symbols[i]`` at
    ``bar_ts[i]``. One model call answered all the rows: each gets its share of the time."""
    records = []
    for answer in answers:
        per_row = answer.latency_us / len(symbols)
        for i, symbol in enumerate(symbols):
            records.append(
                PredictionRecord(
                    model_version_id=answer.version_id,
                    family=answer.family,
                    role=answer.role,
                    symbol=symbol,
                    bar_ts=pd.Timestamp(bar_ts[i]).to_pydatetime(),
                    probability=answer.probability[i],
                    signal=answer.signal[i],
                    latency_us=per_row,
                    request_id=request_id,
                )
            )
    return records


def write_predictions(
    db: Database, records: Iterable[PredictionRecord], *, timeout: float | None = None
) -> int:
    """Write ``records`` in one transaction (the month partitions their bars need, COPY,
    then insert what is new); returns how many rows were new. Writing the same records
    again inserts nothing. ``timeout``: seconds to wait for a pooled connection. Raises the
    database's errors."""
    records = list(records)
    if not records:
        return 0
    bars = [record.bar_ts for record in records]
    with db.connection(timeout=timeout) as conn, conn.transaction():
        conn.execute(queries.ENSURE_PREDICTION_PARTITIONS, (min(bars), max(bars)))
        conn.execute(queries.CREATE_STAGED_PREDICTIONS)
        with conn.cursor().copy(queries.COPY_STAGED_PREDICTIONS) as copy:
            for record in records:
                copy.write_row(record.copy_row())
        return conn.execute(queries.INSERT_STAGED_PREDICTIONS).rowcount


def read_spool_file(path: Path) -> list[PredictionRecord]:
    """The records of a spool file. A torn last line (the process died mid-append, before
    its fsync returned, so its caller never counted it as logged) is skipped."""
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(PredictionRecord.from_json(line))
        except (ValueError, TypeError, KeyError) as exc:
            if number == len(lines):
                _log.warning("%s: skipping a torn last line (%s)", path, exc)
                continue
            raise ValueError(f"{path}:{number}: not a prediction record: {exc}") from exc
    return records


@dataclass(frozen=True)
class Replayed:
    records: int  # in the file
    inserted: int  # of them new to the table


def replay_spool_file(db: Database, path: Path, *, timeout: float | None = None) -> Replayed | None:
    """Write a spool file's records and delete the file once they are committed; None when
    another replayer or writer holds the file. Replaying a file whose records are already
    stored inserts nothing. Raises the database's errors (the file stays)."""
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        # Another replayer may have finished and deleted it between our open and our lock.
        if not path.exists() or os.fstat(handle.fileno()).st_ino != path.stat().st_ino:
            return None
        records = read_spool_file(path)
        inserted = write_predictions(db, records, timeout=timeout) if records else 0
        path.unlink()  # still under the lock: nobody replays it again meanwhile
    return Replayed(len(records), inserted)


class PredictionLog:
    """Logs predictions to ``model_predictions`` from a background thread, spooling to
    ``spool_dir`` while the database is unreachable. See the module's docstring.

    ``max_queue``: records waiting for the writer before :meth:`log` spills to the spool;
    ``batch_size``: records per transaction at most; ``flush_seconds``: how long the writer
    gathers a batch after its first record; ``retry_seconds``: how often an unreachable
    database is tried again; ``connect_timeout``: seconds the writer waits for a pooled
    connection before calling the database unreachable; ``max_spool_bytes``: size at which
    the spool file is rotated.
    """

    def __init__(
        self,
        db: Database,
        spool_dir: Path | str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 0.2,
        retry_seconds: float = 1.0,
        connect_timeout: float = 2.0,
        max_spool_bytes: int = 64 * 1024 * 1024,
    ):
        self._db = db
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[PredictionRecord] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._connect_timeout = connect_timeout
        self._max_spool_bytes = max_spool_bytes
        self._prefix = f"predictions-{socket.gethostname()}-{os.getpid()}"
        self._spool_lock = threading.Lock()
        self._spool_handle = None  # the open, flock-held spool file, if any
        self._spool_path: Path | None = None
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(
            (
                "queued",
                "written",
                "inserted",
                "batches",
                "spooled",
                "spilled",
                "replayed",
                "replay_inserted",
                "rejected",
                "lost",
                "db_errors",
                "conflicts",
            ),
            0,
        )
        self._down = False
        self._next_try = 0.0
        # Files left by an earlier process are replayed first thing.
        self._replay_due = any(self.spool_dir.glob(SPOOL_PATTERN))
        self._stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # The caller's side ----------------------------------------------------------------------

    def log(self, records: PredictionRecord | Iterable[PredictionRecord]) -> None:
        """Queue ``records`` for the writer; when the queue is full (or the log is closed),
        append them to the spool instead. Never waits on the database, never raises for it."""
        if isinstance(records, PredictionRecord):
            records = [records]
        overflow: list[PredictionRecord] = []
        queued = 0
        for record in records:
            if self._closed or overflow:
                overflow.append(record)
                continue
            try:
                self._queue.put_nowait(record)
                queued += 1
            except queue.Full:
                overflow.append(record)
        self._count(queued=queued)
        if overflow:
            self._count(spilled=len(overflow))
            self._spool(overflow)

    def stats(self) -> dict[str, int | bool]:
        """Counters for /metrics: records queued, written (in committed batches; ``inserted``
        of them new), batches, spooled (of them ``spilled`` by a full queue), replayed from
        spool files (``replay_inserted`` new), rejected, lost (database and spool both
        failed), database errors, writes retried after losing a race to another transaction
        (conflicts), the queue depth, the spool files waiting, and whether the database is
        believed up."""
        with self._counts_lock:
            counts: dict[str, int | bool] = dict(self._counts)
        counts["queue_depth"] = self._queue.qsize()
        counts["spool_files"] = len(list(self.spool_dir.glob(SPOOL_PATTERN)))
        counts["database_up"] = not self._down
        return counts

    def close(self, timeout: float = 60.0) -> None:
        """Write or spool everything queued, replay the spool if the database answers, stop
        the writer. Records logged afterwards go to the spool."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.error("prediction log writer did not stop within %.0f s", timeout)
        # Whatever was queued but not taken (a stuck writer) is kept on disk.
        self._spool(self._drain_nowait(None))
        self._seal()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            batch = self._next_batch(stopping)
            if batch:
                try:
                    self._store(batch)
                except Exception:  # a bug here must not end logging: keep the batch on disk
                    _log.exception("prediction log writer failed; the batch is spooled")
                    self._spool(batch)
            finishing = stopping and self._queue.empty()
            # On the way out, one last replay only if the database is believed up: close()
            # must not wait out retries.
            if self._replay_due and (not self._down if finishing else self._may_try()):
                try:
                    self._replay()
                except Exception:  # the files stay for the next round or process
                    _log.exception("prediction log replay failed")
            if finishing:
                return

    def _next_batch(self, stopping: bool) -> list[PredictionRecord]:
        """Up to batch_size records: the first waited for (briefly), the rest gathered for
        at most flush_seconds, so a steady trickle still makes few transactions."""
        if stopping:
            return self._drain_nowait(self._batch_size)
        try:
            first = self._queue.get(timeout=min(self._flush_seconds, self._retry_seconds))
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._flush_seconds
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                batch.extend(self._drain_nowait(self._batch_size - len(batch)))
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _drain_nowait(self, limit: int | None) -> list[PredictionRecord]:
        batch: list[PredictionRecord] = []
        while limit is None or len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _may_try(self) -> bool:
        return not self._down or time.monotonic() >= self._next_try

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:
            _log.warning("prediction log: database unreachable, spooling (%s)", exc)
        self._down = True
        self._next_try = time.monotonic() + self._retry_seconds
        self._count(db_errors=1)

    def _mark_up(self) -> None:
        if self._down:
            _log.warning("prediction log: database answers again, replaying the spool")
            self._replay_due = True
        self._down = False

    def _store(self, batch: list[PredictionRecord]) -> None:
        if not self._may_try():
            self._spool(batch)
            return
        try:
            inserted = self._write(batch)
        except TRANSIENT_ERRORS as exc:
            self._mark_down(exc)
            self._spool(batch)
            return
        except psycopg.Error:
            self._mark_up()
            self._store_one_by_one(batch)
            return
        self._mark_up()
        self._count(written=len(batch), inserted=inserted, batches=1)

    def _write(self, batch: list[PredictionRecord]) -> int:
        # A deadlock or serialization failure is the database answering, not away: the
        # transaction lost a race with another one (say a promotion locking the versions
        # the rows reference) and the same write succeeds when tried again.
        for attempt in range(CONFLICT_RETRIES):
            try:
                return write_predictions(self._db, batch, timeout=self._connect_timeout)
            except psycopg.errors.TransactionRollback:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                self._count(conflicts=1)
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _store_one_by_one(self, batch: list[PredictionRecord]) -> None:
        for index, record in enumerate(batch):
            try:
                inserted = self._write([record])
            except TRANSIENT_ERRORS as exc:
                self._mark_down(exc)
                self._spool(batch[index:])
                return
            except psycopg.Error as exc:
                self._reject(record, exc)
                continue
            self._count(written=1, inserted=inserted, batches=1)

    def _replay(self) -> None:
        """Replay every spool file nobody else holds, oldest first; stops at the first sign
        the database is away (that file and the later ones stay)."""
        self._seal()  # our own current file becomes replayable
        self._replay_due = False
        for path in sorted(self.spool_dir.glob(SPOOL_PATTERN), key=_mtime):
            try:
                replayed = replay_spool_file(self._db, path, timeout=self._connect_timeout)
            except TRANSIENT_ERRORS as exc:
                self._mark_down(exc)
                self._replay_due = True
                return
            except FileNotFoundError:
                continue  # replayed and deleted by another process meanwhile
            except psycopg.Error:
                self._mark_up()
                self._replay_one_by_one(path)
                continue
            if replayed is None:
                self._replay_due = True  # held by a writer or replayer: next round
                continue
            self._mark_up()
            self._count(replayed=replayed.records, replay_inserted=replayed.inserted)

    def _replay_one_by_one(self, path: Path) -> None:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._replay_due = True
                return
            for record in read_spool_file(path):
                try:
                    inserted = write_predictions(self._db, [record], timeout=self._connect_timeout)
                except TRANSIENT_ERRORS as exc:
                    # The records already written are written again next time: no harm.
                    self._mark_down(exc)
                    self._replay_due = True
                    return
                except psycopg.Error as exc:
                    self._reject(record, exc)
                    continue
                self._count(replayed=1, replay_inserted=inserted)
            path.unlink()

    # The spool ---------------------------------------------------------------------------------

    def _spool(self, records: list[PredictionRecord]) -> None:
        """Append ``records`` to this process's spool file and fsync it."""
        if not records:
            return
        data = "".join(record.to_json() + "\n" for record in records).encode()
        with self._spool_lock:
            try:
                handle = self._open_spool()
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                if handle.tell() >= self._max_spool_bytes:
                    self._seal_locked()
            except OSError:
                # Neither the database nor the disk takes them: serving goes on, and the
                # loss is counted and said, never silent. A fresh file is tried next time.
                _log.exception("prediction log: %d records lost (spool unwritable)", len(records))
                self._count(lost=len(records))
                try:
                    self._seal_locked()
                except OSError:
                    self._spool_handle = self._spool_path = None
                return
        self._replay_due = True
        self._count(spooled=len(records))

    def _open_spool(self):
        if self._spool_handle is None:
            path = self.spool_dir / f"{self._prefix}-{time.time_ns()}.jsonl"
            handle = open(path, "ab")  # noqa: SIM115 (held open across appends)
            # Held while the file grows: replayers skip it until it is sealed.
            fcntl.flock(handle, fcntl.LOCK_EX)
            _fsync_dir(self.spool_dir)  # the new file's name survives a crash too
            self._spool_handle, self._spool_path = handle, path
        return self._spool_handle

    def _seal(self) -> None:
        with self._spool_lock:
            self._seal_locked()

    def _seal_locked(self) -> None:
        if self._spool_handle is not None:
            self._spool_handle.close()  # releases the flock
            self._spool_handle = self._spool_path = None

    def _reject(self, record: PredictionRecord, exc: BaseException) -> None:
        _log.error("prediction %s refused by the database: %s", record.id, exc)
        line = json.dumps({"record": json.loads(record.to_json()), "error": str(exc)})
        path = self.spool_dir / f"rejected-{self._prefix}.jsonl"
        with self._spool_lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._count(rejected=1)

    def _count(self, **increments: int) -> None:
        with self._counts_lock:
            for name, value in increments.items():
                self._counts[name] += value


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
