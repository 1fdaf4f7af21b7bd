"""s3:// data sets, fetched with boto3 into the local cache.

The endpoint comes from $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL (any S3-compatible store, e.g. MinIO),
credentials and region from boto3's usual environment chain. A key ending in '/' fetches every object
under that prefix (e.g. a directory of IDX files). An object is fetched again when its size changed.

What the store answers and asking again cannot change (no credentials, access denied, no such bucket or
object) is DataUnavailable at once, naming training.dataset and the cause; a store that does not answer
(or answers that it is busy) is retried as storage calls are (kubenas_trainer.storage.Retry, until
$KUBENAS_STORAGE_DEADLINE_SECONDS), then DataUnavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubenas_trainer.data.cache import cache_dir
from kubenas_trainer.spec import DataUnavailable, UnusableSpec
from kubenas_trainer.storage import Retry, StorageError, Store, deadline_seconds, describe

NO_CREDENTIALS = "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the storage Secret)"
DENIED_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled")


def _code(error: BaseException) -> tuple[str, int]:
    """The error code and HTTP status S3 answered with ('', 0: no answer)."""
    response = getattr(error, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    return code, int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)


def _final(error: Exception) -> bool:
    """An answer that asking again will not change: a client error (4xx but a timeout or throttling) or
    credentials the chain does not have."""
    from botocore.exceptions import NoCredentialsError, ParamValidationError, PartialCredentialsError

    if isinstance(error, NoCredentialsError | PartialCredentialsError | ParamValidationError):
        return True
    code, status = _code(error)
    return (400 <= status < 500 and status not in (408, 429)) or code in ("NoSuchBucket", "NoSuchKey")


def _cause(error: BaseException, client: Any, bucket: str) -> str:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return NO_CREDENTIALS
    code, status = _code(error)
    if code in DENIED_CODES or status == 403:
        answer = [f"HTTP {status}"] if status else []
        answer += [code] if code and not code.isdigit() else []  # a HEAD's answer has no code but its status
        return f"access denied ({' '.join(answer)}): the credentials in the environment may not read it"
    if code == "NoSuchBucket" or (status == 404 and not _bucket_exists(client, bucket)):
        return f"no such bucket {bucket!r}"
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return "no such object"
    if isinstance(error, StorageError):
        return f"the store does not answer: {error}"
    return describe(error)


def _bucket_exists(client: Any, bucket: str) -> bool:
    """Whether the bucket is there (a HEAD of a missing object answers 404 without saying which)."""
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as error:
        return _code(error)[1] != 404
    return True


def _fetch_object(client: Any, bucket: str, key: str, target: Path, retry: Retry) -> None:
    what = f"s3://{bucket}/{key}"
    size = retry.call(f"head {what}", lambda: client.head_object(Bucket=bucket, Key=key), _final)
    if target.exists() and target.stat().st_size == size["ContentLength"]:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    retry.call(f"download {what}", lambda: client.download_file(bucket, key, str(partial)), _final)
    partial.replace(target)


def _list(client: Any, bucket: str, prefix: str, retry: Retry) -> list[str]:
    def attempt() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    return retry.call(f"list s3://{bucket}/{prefix}", attempt, _final)


def fetch(uri: str) -> Path:
    """The local copy of an s3://bucket/key object (or bucket/prefix/ tree); DataUnavailable when the
    store refuses it, has none, or does not answer in time."""
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise UnusableSpec(f"training.dataset: {uri!r} is not an s3://bucket/key URI")
    client = Store().client
    root, retry = cache_dir() / "s3" / bucket, Retry.within(deadline_seconds())
    try:
        if not key.endswith("/"):
            _fetch_object(client, bucket, key, root / key, retry)
            return root / key
        keys = _list(client, bucket, key, retry)
        if not keys:
            raise DataUnavailable(f"training.dataset: no objects under {uri}")
        for name in keys:
            if not name.endswith("/"):
                _fetch_object(client, bucket, name, root / name, retry)
        return root / key
    except UnusableSpec:
        raise
    except Exception as error:
        raise DataUnavailable(f"training.dataset: {uri}: {_cause(error, client, bucket)}") from error
