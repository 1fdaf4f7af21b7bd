"""What the trainer's tests talk to besides the real servers: a bucket of their own on the S3 server, and
a port that accepts connections and hangs up at once (a Pushgateway that is down), counting them."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .s3 import S3Server


@dataclass
class Bucket:
    """A fresh bucket (the S3 server keeps every test's objects in this process)."""

    server: S3Server
    name: str = field(default_factory=lambda: f"runs-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.server.client().create_bucket(Bucket=self.name)

    def uri(self, prefix: str) -> str:
        return f"s3://{self.name}/{prefix}"

    def objects(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under prefix by its key relative to it: Size, LastModified, ..."""
        listing = self.server.client().get_paginator("list_objects_v2")
        pages = listing.paginate(Bucket=self.name, Prefix=prefix)
        items = [item for page in pages for item in page.get("Contents", [])]
        return {item["Key"].removeprefix(prefix): item for item in items}

    def read(self, key: str) -> bytes:
        body: bytes = self.server.client().get_object(Bucket=self.name, Key=key)["Body"].read()
        return body


class HangUp:
    """A loopback port that accepts each connection and closes it unanswered; `connections` counts them."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> HangUp:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
