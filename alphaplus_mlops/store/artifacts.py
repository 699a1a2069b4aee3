"""A content-addressed artifact store: a file's name is its SHA-256.

The local backend keeps files under ``<root>/<aa>/<sha256><suffix>``; the URI it returns
(``file://...``, percent-encoded) is what the database records. The store's root is the
truth about where files are: a read takes only the checksum and the suffix from a URI and
finds the file under the root it was opened with, so a store moved or restored elsewhere
keeps serving every recorded artifact, and no URI can point a read outside the root.

Reads verify the checksum, so a tampered or truncated file is refused rather than served.
A put that finds a file of its name already there checks it too and replaces it when its
bytes are wrong, so re-storing an artifact repairs it. Every write goes to a temporary
file that is flushed and fsynced, renamed into place, and the folder fsynced: after a
crash a name holds the whole file or nothing, and no temporary file outlives a failure.

An object-storage backend (S3 API, GCS, Azure) is another :class:`ArtifactStore`
(store.object_artifacts): the same methods, its own URI scheme. :func:`open_artifact_store`
picks one from a location (``ALPHAPLUS_ARTIFACT_URL``, or the home's folder). Either reads
any recorded URI by its file name alone, so records written by one keep serving from the
other once the files are copied across.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

TEMPORARY_PREFIX = ".incoming-"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Suffixes are chosen by the code (".parquet", ".cbm", ".onnx"), never by data: anything
# else in a URI's file name is refused rather than joined onto a path.
_SUFFIX = re.compile(r"(\.[A-Za-z0-9_-]{1,16}){0,3}")
OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "azure")


class ArtifactIntegrityError(RuntimeError):
    """An artifact is missing, or its bytes do not match the recorded checksum."""


class ArtifactMissingError(ArtifactIntegrityError):
    """No file where the recorded checksum says the artifact is."""


class ArtifactCorruptError(ArtifactIntegrityError):
    """The file is there but its bytes are not the recorded ones (truncated, altered), or
    the record itself cannot name a file inside the store."""


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size: int
    repaired: bool = False
    """True when a file of this name was already there with other bytes and was replaced."""


@dataclass(frozen=True)
class StoreProblem:
    """A file in the store that is not what its name promises (from :meth:`scan`)."""

    path: Path | str
    """A file's path, or an object's URL."""
    problem: str
    """corrupt | unexpected | temporary"""
    detail: str


class ArtifactStore(Protocol):
    """What the rest of the project needs from a place that keeps files by checksum."""

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredArtifact: ...

    def put_file(self, path: Path, suffix: str | None = None) -> StoredArtifact: ...

    def get_bytes(self, uri: str, expected_sha256: str) -> bytes:
        """The bytes at ``uri``; raises ArtifactIntegrityError unless they match."""
        ...

    def verify(self, uri: str, expected_sha256: str) -> None:
        """Raises ArtifactMissingError or ArtifactCorruptError unless the file matches."""
        ...

    def location(self, uri: str) -> str:
        """Where a recorded artifact is in this store, for people (a path or a URL)."""
        ...

    def scan(self, temporary_age_seconds: float = 3600.0) -> list[StoreProblem]: ...

    def sweep_temporaries(self, older_than_seconds: float = 3600.0) -> list[Path]: ...


def open_artifact_store(location: str | Path) -> ArtifactStore:
    """The store at ``location``: a folder (a path or ``file://``), or an object-store URL
    (``s3://bucket/prefix``, ``gs://``, ``az://``; credentials from the environment)."""
    text = str(location)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("", "file"):
        return LocalArtifactStore(unquote(urlsplit(text).path) if scheme else text)
    if scheme in OBJECT_SCHEMES:
        from alphaplus_mlops.store.object_artifacts import ObjectArtifactStore

        return ObjectArtifactStore(text)
    raise ValueError(
        f"an artifact store is a folder, file://, or one of "
        f"{', '.join(s + '://' for s in OBJECT_SCHEMES)}; got the scheme {scheme!r}"
    )


def recorded_suffix(uri: str, expected_sha256: str) -> str:
    """The suffix of the artifact a record names; ArtifactCorruptError when the URI's name
    is not a stored artifact's or names another checksum than the one recorded with it."""
    named, suffix = split_name(name_in_uri(uri))
    if named != expected_sha256:
        raise ArtifactCorruptError(
            f"{uri} names checksum {named[:12]}…, recorded {str(expected_sha256)[:12]}…"
        )
    return suffix


def name_in_uri(uri: str) -> str:
    """A recorded URI's file name: only the checksum and suffix in it are ever read,
    whichever store wrote it."""
    parts = urlsplit(uri)
    if parts.scheme not in ("file", *OBJECT_SCHEMES):
        raise ValueError(f"an artifact URI is file:// or an object-store URL, got {uri!r}")
    return PurePosixPath(unquote(parts.path)).name


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the folder holding the new name is on disk.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_name(name: str) -> tuple[str, str]:
    """(checksum, suffix) of a stored file's name; ArtifactCorruptError if it is not one."""
    sha256, suffix = name[:64], name[64:]
    if not _SHA256.fullmatch(sha256) or not _SUFFIX.fullmatch(suffix):
        raise ArtifactCorruptError(f"{name!r} is not a stored artifact's name (sha256+suffix)")
    return sha256, suffix


class LocalArtifactStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()

    # Where files are --------------------------------------------------------------------

    def path_for(self, sha256: str, suffix: str = "") -> Path:
        """The one place a checksum becomes a path: under the root, or refused."""
        split_name(f"{sha256}{suffix}")
        path = self.root / sha256[:2] / f"{sha256}{suffix}"
        # A symlink planted in the store could still lead elsewhere.
        if not path.resolve().is_relative_to(self.root):
            raise ArtifactCorruptError(f"{path} resolves outside the store {self.root}")
        return path

    def path_of(self, uri: str) -> Path:
        """The file a recorded URI names, in this store: only the URI's file name counts."""
        return self.path_for(*split_name(name_in_uri(uri)))

    def location(self, uri: str) -> str:
        return str(self.path_of(uri))

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _recorded_path(self, uri: str, expected_sha256: str) -> Path:
        return self.path_for(expected_sha256, recorded_suffix(uri, expected_sha256))

    # Writing ------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredArtifact:
        digest = sha256_bytes(data)
        target = self.path_for(digest, suffix)
        repaired = False
        if target.is_file():
            if target.stat().st_size == len(data) and sha256_file(target) == digest:
                return StoredArtifact(uri=target.as_uri(), sha256=digest, size=len(data))
            repaired = True
            log.warning("artifact %s failed its checksum; rewriting it from new bytes", target)
        self._write(target, data)
        return StoredArtifact(uri=target.as_uri(), sha256=digest, size=len(data), repaired=repaired)

    def put_file(self, path: Path, suffix: str | None = None) -> StoredArtifact:
        return self.put_bytes(
            Path(path).read_bytes(), Path(path).suffix if suffix is None else suffix
        )

    def _write(self, target: Path, data: bytes) -> None:
        folder = target.parent
        new_folder = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if new_folder:
            _fsync_dir(folder.parent)
        # Write then rename: a reader never sees half a file under the final name.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync_dir(folder)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # Reading ------------------------------------------------------------------------------

    def get_bytes(self, uri: str, expected_sha256: str) -> bytes:
        path = self._recorded_path(uri, expected_sha256)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactMissingError(f"artifact missing: {path}") from exc
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise ArtifactCorruptError(
                f"artifact {path} fails its checksum: recorded {expected_sha256[:12]}…, "
                f"file has {actual[:12]}… ({len(data)} bytes)"
            )
        return data

    def verify(self, uri: str, expected_sha256: str) -> None:
        path = self._recorded_path(uri, expected_sha256)
        try:
            actual = sha256_file(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactMissingError(f"artifact missing: {path}") from exc
        if actual != expected_sha256:
            raise ArtifactCorruptError(
                f"artifact {path} fails its checksum: recorded {expected_sha256[:12]}…, "
                f"file has {actual[:12]}…"
            )

    # Checking the whole store -------------------------------------------------------------

    def scan(self, temporary_age_seconds: float = 3600.0) -> list[StoreProblem]:
        """Every file whose bytes do not match its name, every file that has no stored
        artifact's name, and temporary files older than ``temporary_age_seconds`` (a
        writer that died before its cleanup ran). Files that are missing cannot be seen
        here: the database's records say what should exist (store.artifact_audit)."""
        problems = []
        if not self.root.is_dir():
            return problems
        for path in self.temporaries(temporary_age_seconds):
            problems.append(StoreProblem(path, "temporary", "left behind by a failed writer"))
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() or p.is_symlink()):
            name = path.name
            if name.startswith(TEMPORARY_PREFIX):
                continue
            try:
                sha256, suffix = split_name(name)
                expected = self.path_for(sha256, suffix)
            except ArtifactIntegrityError as exc:
                problems.append(StoreProblem(path, "unexpected", str(exc)))
                continue
            if expected != path:
                problems.append(StoreProblem(path, "unexpected", f"belongs at {expected}"))
                continue
            actual = sha256_file(path)
            if actual != sha256:
                problems.append(
                    StoreProblem(
                        path,
                        "corrupt",
                        f"file has {actual[:12]}… ({path.stat().st_size} bytes)",
                    )
                )
        return problems

    def temporaries(self, older_than_seconds: float = 3600.0) -> list[Path]:
        """Temporary files older than ``older_than_seconds``: left by a writer that was
        killed before its cleanup ran (no ``finally`` runs on SIGKILL). Younger ones may
        belong to a write in progress."""
        now = time.time()
        return sorted(
            path
            for path in self.root.glob(f"*/{TEMPORARY_PREFIX}*")
            if now - path.lstat().st_mtime > older_than_seconds
        )

    def sweep_temporaries(self, older_than_seconds: float = 3600.0) -> list[Path]:
        """Remove the temporaries a killed writer left behind; the paths removed."""
        removed = []
        for path in self.temporaries(older_than_seconds):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        return removed
