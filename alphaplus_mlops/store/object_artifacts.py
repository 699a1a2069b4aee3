"""The artifact store on object storage (S3 API, GCS, Azure) through obstore.

The same contract as :class:`~alphaplus_mlops.store.artifacts.LocalArtifactStore`: a
file's key is ``<prefix>/<aa>/<sha256><suffix>``, every read verifies the checksum, a put
that finds an object of its name with other bytes replaces it (repair), and a read takes
only the checksum and suffix from a recorded URI, so the store's URL is the truth about
where objects are (a bucket copied elsewhere keeps serving every recorded artifact).

What differs is what the backend guarantees: a PUT is atomic (readers see the old object
or the whole new one, never half), so there are no temporary files to sweep; an
interrupted multipart upload is invisible and left to the bucket's lifecycle rule.
Credentials, endpoint and region come from the environment only (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ALLOW_HTTP``; the
GCS and Azure equivalents), read by obstore; the URL names the bucket and prefix only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import from_url

from alphaplus_mlops.store.artifacts import (
    OBJECT_SCHEMES,
    ArtifactCorruptError,
    ArtifactMissingError,
    StoredArtifact,
    StoreProblem,
    name_in_uri,
    recorded_suffix,
    sha256_bytes,
    split_name,
)

log = logging.getLogger(__name__)

# A store that is down fails a request within about half a minute instead of obstore's
# default three minutes of retries: a training step or a load should report, not stall.
_RETRY = {
    "max_retries": 4,
    "retry_timeout": timedelta(seconds=30),
    "backoff": {"init_backoff": timedelta(milliseconds=200), "max_backoff": timedelta(seconds=5)},
}
_CLIENT = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(seconds=120)}
_CHUNK = 1 << 20


class ArtifactStoreUnavailableError(RuntimeError):
    """The object store refuses a write: no such bucket, or no access to it."""


class ObjectArtifactStore:
    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in OBJECT_SCHEMES:
            raise ValueError(
                f"an object-store artifact URL starts with one of "
                f"{', '.join(s + '://' for s in OBJECT_SCHEMES)}; got {parts.scheme!r}"
            )
        if parts.username or parts.password or parts.query:
            # Credentials belong in the environment; a URL ends up in logs and in the UI.
            raise ValueError(
                "the artifact URL names a bucket and prefix only: put credentials and "
                "options in the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...)"
            )
        self.url = url.rstrip("/")
        client = dict(_CLIENT)
        # Explicit client options replace the ones obstore reads from the environment, so
        # the one that matters for a test or in-cluster endpoint is carried over.
        if os.environ.get("AWS_ALLOW_HTTP", "").strip().lower() in ("1", "true", "yes"):
            client["allow_http"] = True
        self._store = from_url(self.url, retry_config=_RETRY, client_options=client)

    def __repr__(self) -> str:
        return f"ObjectArtifactStore({self.url!r})"

    # Where objects are --------------------------------------------------------------------

    @staticmethod
    def key_for(sha256: str, suffix: str = "") -> str:
        split_name(f"{sha256}{suffix}")
        return f"{sha256[:2]}/{sha256}{suffix}"

    def uri_for(self, key: str) -> str:
        return f"{self.url}/{key}"

    def location(self, uri: str) -> str:
        """Where a recorded artifact is, for people: its URL in this store."""
        return self.uri_for(self.key_for(*split_name(name_in_uri(uri))))

    def _recorded_key(self, uri: str, expected_sha256: str) -> str:
        return self.key_for(expected_sha256, recorded_suffix(uri, expected_sha256))

    # Writing ------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredArtifact:
        digest = sha256_bytes(data)
        key = self.key_for(digest, suffix)
        repaired = False
        existing = self._read(key)
        if existing is not None:
            if sha256_bytes(existing) == digest:
                return StoredArtifact(uri=self.uri_for(key), sha256=digest, size=len(data))
            repaired = True
            log.warning("artifact %s failed its checksum; rewriting it from new bytes", key)
        # Concurrent puts of the same content write the same bytes: whichever lands last,
        # the object is right.
        try:
            obstore.put(self._store, key, data)
        except (FileNotFoundError, PermissionDeniedError, UnauthenticatedError) as exc:
            why = "the bucket does not exist" if isinstance(exc, OSError) else "access denied"
            raise ArtifactStoreUnavailableError(
                f"cannot write {self.uri_for(key)}: {why} ({str(exc).splitlines()[0][:200]})"
            ) from exc
        return StoredArtifact(
            uri=self.uri_for(key), sha256=digest, size=len(data), repaired=repaired
        )

    def put_file(self, path: Path, suffix: str | None = None) -> StoredArtifact:
        path = Path(path)
        return self.put_bytes(path.read_bytes(), path.suffix if suffix is None else suffix)

    # Reading ------------------------------------------------------------------------------

    def _read(self, key: str) -> bytes | None:
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except FileNotFoundError:
            return None

    def get_bytes(self, uri: str, expected_sha256: str) -> bytes:
        key = self._recorded_key(uri, expected_sha256)
        data = self._read(key)
        if data is None:
            raise ArtifactMissingError(f"artifact missing: {self.uri_for(key)}")
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise ArtifactCorruptError(
                f"artifact {self.uri_for(key)} fails its checksum: recorded "
                f"{expected_sha256[:12]}…, object has {actual[:12]}… ({len(data)} bytes)"
            )
        return data

    def verify(self, uri: str, expected_sha256: str) -> None:
        key = self._recorded_key(uri, expected_sha256)
        actual = self._digest(key)
        if actual is None:
            raise ArtifactMissingError(f"artifact missing: {self.uri_for(key)}")
        if actual != expected_sha256:
            raise ArtifactCorruptError(
                f"artifact {self.uri_for(key)} fails its checksum: recorded "
                f"{expected_sha256[:12]}…, object has {actual[:12]}…"
            )

    def _digest(self, key: str) -> str | None:
        digest = hashlib.sha256()
        try:
            for chunk in obstore.get(self._store, key).stream(min_chunk_size=_CHUNK):
                digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    # Checking the whole store -------------------------------------------------------------

    def scan(self, temporary_age_seconds: float = 3600.0) -> list[StoreProblem]:
        """Every object whose bytes do not match its name, and every object without a
        stored artifact's name or at the wrong key. (No temporaries on object storage.)"""
        problems = []
        for batch in obstore.list(self._store):
            for meta in batch:
                key = meta["path"]
                try:
                    sha256, suffix = split_name(PurePosixPath(key).name)
                    expected = self.key_for(sha256, suffix)
                except ArtifactCorruptError as exc:
                    problems.append(StoreProblem(self.uri_for(key), "unexpected", str(exc)))
                    continue
                if expected != key:
                    problems.append(
                        StoreProblem(self.uri_for(key), "unexpected", f"belongs at {expected}")
                    )
                    continue
                actual = self._digest(key)
                if actual is not None and actual != sha256:
                    problems.append(
                        StoreProblem(
                            self.uri_for(key),
                            "corrupt",
                            f"object has {actual[:12]}… ({meta['size']} bytes)",
                        )
                    )
        return problems

    def sweep_temporaries(self, older_than_seconds: float = 3600.0) -> list[Path]:
        """Nothing to sweep: an object PUT leaves no temporary behind."""
        return []
