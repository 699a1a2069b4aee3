"""The code version recorded with every model: package version plus git commit if known.

A container image has no git checkout: its build sets ALPHAPLUS_CODE_VERSION instead
(deploy/Dockerfile), which wins when set.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


ENV_CODE_VERSION = "ALPHAPLUS_CODE_VERSION"


@lru_cache(maxsize=1)
def code_version() -> str:
    declared = os.environ.get(ENV_CODE_VERSION, "").strip()
    if declared:
        return declared
    try:
        package = version("alphaplus-mlops")
    except PackageNotFoundError:
        package = "unknown"
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+g{commit}{'.dirty' if dirty else ''}"
