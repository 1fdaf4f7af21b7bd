"""The liveness endpoint while standing by: kopf serves it only once it runs, i.e. once leading, and a
standby replica must not be restarted by its liveness probe for waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


def serve_standby_liveness(url: str) -> Callable[[], None]:
    """Answer 200 on the URL's path (e.g. http://0.0.0.0:8080/healthz); returns a function that stops it
    and frees the port for kopf's own endpoint."""
    parts = urlparse(url)
    path = parts.path or "/"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path.split("?")[0] == path
            body = b'{"standby": true}\n' if ok else b"not found\n"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json" if ok else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # the probe's every few seconds are noise
            pass

    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
