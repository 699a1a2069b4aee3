"""The embedded PostgreSQL server used when ALPHAPLUS_DATABASE_URL is unset.

pgserver ships PostgreSQL 16 binaries and runs a private server over a unix socket in a
folder. We start it with ``cleanup_mode=None`` so it outlives the command that started it
(as a real database would) until ``alphaplus-mlops db stop``. Run as root, pgserver runs
the server as a system user ``pgserver``; stopping therefore goes through pgserver's own
``pg_ctl`` wrapper, which switches to that user.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started or stopped."""


@dataclass(frozen=True)
class EmbeddedStatus:
    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    url: str | None


def _pgserver():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.utils import PostmasterInfo
    return pgserver, PostmasterInfo


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the server in ``data_dir`` and return its psycopg URL.

    A ``postmaster.pid`` left behind by a crash names a process that no longer runs;
    pgserver then starts a fresh postmaster on the same data, which is what we want.
    """
    pgserver, _ = _pgserver()
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    except Exception as exc:  # pgserver raises bare CalledProcessError/AssertionError
        log = data_dir / "log"
        tail = log.read_text()[-2000:] if log.exists() else "(no server log)"
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {data_dir}: {exc}\n{tail}"
        ) from exc
    return server.get_uri()


def embedded_status(data_dir: Path) -> EmbeddedStatus:
    _, postmaster_info = _pgserver()
    data_dir = Path(data_dir).expanduser().resolve()
    initialized = (data_dir / "PG_VERSION").exists()
    info = postmaster_info.read_from_pgdata(data_dir) if initialized else None
    running = info is not None and info.is_running() and info.status == "ready"
    return EmbeddedStatus(
        data_dir=data_dir,
        initialized=initialized,
        running=running,
        pid=info.pid if running else None,
        url=info.get_uri() if running else None,
    )


def stop_embedded(data_dir: Path) -> bool:
    """Stop the server in ``data_dir``. Returns False when it was not running."""
    pgserver, _ = _pgserver()
    from pgserver._commands import pg_ctl

    status = embedded_status(data_dir)
    if not status.running:
        return False
    system_user = "pgserver" if _running_as_root() else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=status.data_dir, user=system_user)
    except subprocess.CalledProcessError as exc:
        raise EmbeddedDatabaseError(f"pg_ctl stop failed for {status.data_dir}: {exc}") from exc
    # Forget the in-process handle so a later start in this process starts a new server.
    pgserver.PostgresServer._instances.pop(status.data_dir, None)
    return True


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
