"""A content-addressed artifact store: a file's name is its SHA-256.

The local backend keeps files under ``<root>/<aa>/<sha256><suffix>``; the URI it returns
(``file://...``) is what the database records. Reads verify the checksum, so a tampered
or truncated file is refused rather than served. An object-storage backend (S3 API) is
another :class:`ArtifactStore`: the same three methods, its own URI scheme.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit


class ArtifactIntegrityError(RuntimeError):
    """An artifact is missing, or its bytes do not match the recorded checksum."""


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size: int


class ArtifactStore(Protocol):
    """What the rest of the project needs from a place that keeps files by checksum."""

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredArtifact: ...

    def put_file(self, path: Path, suffix: str | None = None) -> StoredArtifact: ...

    def get_bytes(self, uri: str, expected_sha256: str) -> bytes:
        """The bytes at ``uri``; raises ArtifactIntegrityError unless they match."""
        ...


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalArtifactStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredArtifact:
        digest = sha256_bytes(data)
        target = self.root / digest[:2] / f"{digest}{suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file under the final name.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        return StoredArtifact(uri=target.as_uri(), sha256=digest, size=len(data))

    def put_file(self, path: Path, suffix: str | None = None) -> StoredArtifact:
        return self.put_bytes(
            Path(path).read_bytes(), Path(path).suffix if suffix is None else suffix
        )

    @staticmethod
    def path_of(uri: str) -> Path:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise ValueError(f"the local artifact store reads file:// URIs, got {uri!r}")
        return Path(parts.path)

    def get_bytes(self, uri: str, expected_sha256: str) -> bytes:
        path = self.path_of(uri)
        if not path.is_file():
            raise ArtifactIntegrityError(f"artifact missing: {path}")
        data = path.read_bytes()
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"artifact {path} fails its checksum: recorded {expected_sha256[:12]}…, "
                f"file has {actual[:12]}…"
            )
        return data
