"""A real HTTP server on loopback that records the webhooks it receives (for engine tests).

``start()`` listens on its port (chosen once, kept across restarts); ``stop()`` closes the socket,
so dockerlink's POSTs are refused as by a receiver that is down. Each POST is kept with its body
and signature header, in arrival order, and answered 204.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from .conftest import free_port


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str
    event: dict[str, Any]


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                delivery = Delivery(
                    body, self.headers.get("X-Dockerlink-Signature", ""), orjson.loads(body)
                )
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [delivery.event for delivery in self.deliveries]

    def event_ids(self) -> list[str]:
        return [str(event["event_id"]) for event in self.events()]

    def check_signatures(self, secret: str) -> None:
        """Every delivery is signed with ``secret`` over its exact body."""
        with self._lock:
            deliveries = list(self.deliveries)
        for delivery in deliveries:
            expected = hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(delivery.signature, f"sha256={expected}"), delivery
