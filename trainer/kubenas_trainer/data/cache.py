"""Where downloaded data sets are kept: $KUBENAS_DATA_CACHE, else ~/.cache/kubenas/datasets."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "kubenas" / "datasets"
    return Path(os.environ.get("KUBENAS_DATA_CACHE", default))


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
