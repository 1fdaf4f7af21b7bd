"""Trials' outputs in object storage, as the operator reads them (the trainer writes them).

The operator reads a trial's result.json from storage when its pod's termination message cannot say
everything (it failed to parse, or the curve did not fit in 4 KiB), and names the exported model and
TensorBoard events of the best trial in status.best. Credentials are the operator's own (boto3's
default chain); endpoint and region come from spec.storage.
"""

from __future__ import annotations

from typing import Any

from kubenas_trainer.spec import TrialResult
from pydantic import ValidationError

from kubenas.api.outputs import StorageSpec

RESULT_FILE = "result.json"
MODEL_FILE = "model.pt2"
TENSORBOARD_DIR = "tensorboard/"


class StorageUnavailable(Exception):
    """Object storage could not be read; the message says why."""


def _client(storage: StorageSpec) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2})
    return boto3.client("s3", endpoint_url=storage.endpoint, region_name=storage.region, config=config)


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_result(storage: StorageSpec, trial_uri: str) -> TrialResult | None:
    """The result.json a trial uploaded last, None if there is none (StorageUnavailable on errors)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(trial_uri)
    try:
        body = _client(storage).get_object(Bucket=bucket, Key=prefix + RESULT_FILE)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise StorageUnavailable(f"could not read {trial_uri}{RESULT_FILE}: {error}") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"could not read {trial_uri}{RESULT_FILE}: {error}") from error
    try:
        return TrialResult.model_validate_json(body)
    except ValidationError:
        return None
