"""Long-running child processes that stop when asked.

A process started in the background by a non-interactive shell, a container's entrypoint or
some service managers inherits SIGINT (and sometimes SIGTERM) as *ignored*, and Python keeps
an inherited ignore: `dagster dev` started that way shrugged off both and, killed harder,
left its code servers behind. :func:`supervise` runs a command as a child in a process group
of its own with the default dispositions restored, turns SIGTERM, SIGINT or SIGHUP into the
child's own graceful stop (``stop_signal``, SIGINT for `dagster dev`: its Ctrl-C), and kills
whatever of the group is left once ``grace_seconds`` have passed or the leader has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def restore_default_signals() -> None:
    """Default dispositions for the stop signals (what an exec'd program then starts from)."""
    for signum in (*STOP_SIGNALS, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


def supervise(
    args: Sequence[str],
    *,
    stop_signal: signal.Signals = signal.SIGINT,
    grace_seconds: float = 10.0,
    env: dict | None = None,
) -> int:
    """Run ``args`` until it exits or this process is asked to stop; its exit code (or
    128 + the signal that stopped this process, as a shell reports it)."""
    child = subprocess.Popen(
        list(args), env=env, start_new_session=True, preexec_fn=restore_default_signals
    )
    asked: list[int] = []

    def stop(signum, _frame) -> None:
        if not asked:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, stop_signal)
        asked.append(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    deadline = None
    while True:
        try:
            code = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if asked and deadline is None:
                deadline = time.monotonic() + grace_seconds
            if deadline is not None and time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
    # Grandchildren that outlived their parent (a code server waiting out its heartbeat).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    return 128 + asked[0] if asked else code
