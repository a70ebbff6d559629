"""Fixtures: a loopback HTTP server the tests start themselves, which
records every request it gets."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest


class Upstream:
    """A plain-HTTP server on 127.0.0.1: GET /ok* answers "ok body", GET
    /echo answers with the Authorization header it received, anything else
    "other body". ``requests`` lists (path, Authorization) as received."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                auth = self.headers.get("Authorization", "")
                upstream.requests.append((self.path, auth))
                if self.path.startswith("/ok"):
                    body = b"ok body"
                elif self.path == "/echo":
                    body = auth.encode()
                else:
                    body = b"other body"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()
