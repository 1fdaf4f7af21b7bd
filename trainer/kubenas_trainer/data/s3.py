"""s3:// data sets, fetched with boto3 into the local cache.

The endpoint comes from $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL (any S3-compatible store, e.g. MinIO),
credentials and region from boto3's usual environment chain. A key ending in '/' fetches every object
under that prefix (e.g. a directory of IDX files). An object is fetched again when its size changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from kubenas_trainer.data.cache import cache_dir


def _client() -> object:
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint)


def _fetch_object(client: object, bucket: str, key: str, target: Path) -> None:
    size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]  # type: ignore[attr-defined]
    if target.exists() and target.stat().st_size == size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    client.download_file(bucket, key, str(partial))  # type: ignore[attr-defined]
    partial.replace(target)


def fetch(uri: str) -> Path:
    """The local copy of an s3://bucket/key object (or bucket/prefix/ tree)."""
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise ValueError(f"training.dataset: {uri!r} is not an s3://bucket/key URI")
    client = _client()
    root = cache_dir() / "s3" / bucket
    if not key.endswith("/"):
        _fetch_object(client, bucket, key, root / key)
        return root / key
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)  # type: ignore[attr-defined]
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    if not keys:
        raise FileNotFoundError(f"training.dataset: no objects under {uri}")
    for name in keys:
        if not name.endswith("/"):
            _fetch_object(client, bucket, name, root / name)
    return root / key
