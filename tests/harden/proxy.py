"""A TCP proxy in front of moto's server that can hold back responses (slow or stalled KMS).

Real sockets, so botocore's own connect and read timeouts are what ends a stalled call.
For each request that arrives from the client, ``policy()`` says what happens to its
response: ``0.0`` forwards it at once, a positive number forwards it after that many
seconds, ``None`` never forwards it (the client's read timeout must fire).
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Policy = Callable[[], float | None]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        upstream = socket.create_connection(self.server.upstream)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        hold: float | None = 0.0
        try:
            while not self.server.closing.is_set():
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    if key.fileobj is client:
                        hold = self.server.policy()
                        upstream.sendall(data)
                    elif hold is not None:
                        time.sleep(hold)
                        client.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            upstream.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], policy: Policy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.policy = policy
        self.closing = threading.Event()


@contextmanager
def fault_proxy(upstream_url: str, policy: Policy) -> Iterator[str]:
    """Yield the proxy's URL; requests to it reach ``upstream_url`` under ``policy``."""
    host, port = upstream_url.removeprefix("http://").split(":")
    server = _Server((host, int(port)), policy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
