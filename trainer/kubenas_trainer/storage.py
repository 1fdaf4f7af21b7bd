"""S3-compatible object storage for run directories and checkpoints, every call retried until a deadline.

The endpoint is ArtifactStore.endpoint, else boto3's chain ($AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL);
credentials come only from boto3's environment chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a web
identity token, ...). A failed call is retried after $KUBENAS_STORAGE_BACKOFF_SECONDS (default 0.5),
doubling up to 10 s, until its deadline ($KUBENAS_STORAGE_DEADLINE_SECONDS, default 600, for calls that
must finish) or until its caller interrupts it; a missing object is an answer, not an error.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from kubenas_trainer.spec import ArtifactStore

BACKOFF_ENV: Final = "KUBENAS_STORAGE_BACKOFF_SECONDS"
DEADLINE_ENV: Final = "KUBENAS_STORAGE_DEADLINE_SECONDS"
MAX_BACKOFF_SECONDS: Final = 10.0
T = TypeVar("T")


class StorageError(RuntimeError):
    """An S3 call that still failed at its deadline, or was interrupted while retrying."""


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not is_s3(uri) or not bucket:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def deadline_seconds() -> float:
    return float(os.environ.get(DEADLINE_ENV, "600"))


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def missing(error: Exception) -> bool:
    """Whether S3 answered that the object is not there (a connection error has no answer at all)."""
    response = getattr(error, "response", None) or {}
    code = (response.get("Error") or {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class Retry:
    """How long a call keeps trying: until `deadline` (time.monotonic()), or until `interrupt` is set."""

    deadline: float = math.inf
    interrupt: threading.Event | None = None

    @classmethod
    def within(cls, seconds: float) -> Retry:
        return cls(deadline=time.monotonic() + seconds)

    def call(self, what: str, attempt: Callable[[], T], final: Callable[[Exception], bool] = missing) -> T:
        """attempt() until it succeeds; an error that is `final` (by default: no such object) is raised at
        once. Retries are logged at attempts 1, 2, 4, 8, ... (compactly)."""
        wait, tries = float(os.environ.get(BACKOFF_ENV, "0.5")), 0
        while True:
            tries += 1
            try:
                result = attempt()
            except Exception as error:
                left = self.deadline - time.monotonic()
                if final(error):
                    raise
                if left <= 0 or (self.interrupt is not None and self.interrupt.is_set()):
                    raise StorageError(f"{what}: {describe(error)}") from error
                if tries & (tries - 1) == 0:
                    _log(f"storage: {what} failed at attempt {tries} ({describe(error)}); retrying")
                if self._pause(min(wait, left)):
                    raise StorageError(f"{what}: interrupted after {describe(error)}") from error
                wait = min(2 * wait, max(wait, MAX_BACKOFF_SECONDS))
                continue
            if tries > 1:
                _log(f"storage: {what} succeeded at attempt {tries}")
            return result

    def _pause(self, seconds: float) -> bool:
        """Sleep; whether the interrupt came meanwhile."""
        if self.interrupt is None:
            time.sleep(seconds)
            return False
        return self.interrupt.wait(seconds)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Store:
    """An S3 client for one endpoint and region (boto3's retries off: Retry does that)."""

    def __init__(self, store: ArtifactStore | None = None) -> None:
        import boto3
        from botocore.config import Config

        config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
        endpoint, region = (store.endpoint, store.region) if store is not None else (None, None)
        self.client: Any = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)

    def upload(self, source: Path | IO[bytes], uri: str, retry: Retry) -> None:
        """A file (by path, or an open binary file read from its start on each attempt) to uri."""
        bucket, key = split_uri(uri)

        def attempt() -> None:
            if isinstance(source, Path):
                self.client.upload_file(str(source), bucket, key)
            else:
                source.seek(0)
                self.client.upload_fileobj(source, bucket, key)

        retry.call(f"upload {uri}", attempt)

    def download(self, uri: str, target: Path, retry: Retry) -> bool:
        """uri into target, through a hidden temporary file (never uploaded with the run directory, even
        when the process dies meanwhile); False when there is no such object."""
        bucket, key = split_uri(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.fetch")
        try:
            retry.call(f"download {uri}", lambda: self.client.download_file(bucket, key, str(partial)))
        except Exception as error:
            if missing(error):
                return False
            raise
        os.replace(partial, target)
        return True

    def delete(self, uri: str, retry: Retry) -> None:
        bucket, key = split_uri(uri)
        retry.call(f"delete {uri}", lambda: self.client.delete_object(Bucket=bucket, Key=key))


@contextlib.contextmanager
def local_copy(location: str, store: ArtifactStore | None, scratch: Path, field: str) -> Iterator[Path]:
    """A checkpoint at a path (as it is) or an s3:// URI (downloaded to a temporary file in scratch,
    removed afterwards); FileNotFoundError names `field` when there is none."""
    if not is_s3(location):
        yield Path(location)
        return
    handle, name = tempfile.mkstemp(prefix=".fetch-", suffix=".pt", dir=scratch)
    os.close(handle)
    try:
        if not Store(store).download(location, Path(name), Retry.within(deadline_seconds())):
            raise FileNotFoundError(f"{field}: no checkpoint at {location}")
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
