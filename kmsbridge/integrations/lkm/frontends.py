"""Two front doors for ``LkmApi``: Lambda function URLs and a loopback HTTP server.

- ``LkmHandler``: the Lambda runtime entry (``lambda/lkm/handler.py``). Function URL
  (and HTTP API) events, payload format 2.0: ``rawPath`` and ``rawQueryString`` as sent
  (what the Hawk MAC covers), lowercase ``headers``, ``body`` (base64 when
  ``isBase64Encoded``); REST API proxy events (payload 1.0) for a front with a resource
  policy. The
  API is built on the first event (settings and clients once per container); warm
  events reuse it and its bounded caches.
- ``serve``: ``kmsbridge lkm serve``, the standard library's threading HTTP server on
  127.0.0.1 (HTTPS with ``--tls-cert``/``--tls-key``), for development and tests.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

from kmsbridge.integrations.lkm.api import (
    MAX_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    LkmApi,
    error_response,
)

log = logging.getLogger("kmsbridge.lkm")
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- Lambda function URLs


def request_from_event(event: object, request_id: str | None = None) -> HttpRequest | None:
    """The request of a function URL or HTTP API event (payload 2.0), or of an API Gateway
    REST API proxy event (payload 1.0); None if it is neither."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0":
        method = str((context.get("http") or {}).get("method", ""))
        path, query = str(event.get("rawPath", "")), str(event.get("rawQueryString", ""))
    elif "httpMethod" in event and "path" in event:
        # Payload 1.0 has no raw query string: it is rebuilt from the parsed values, which
        # gives back what the client signed for the contract's one parameter (decryptType).
        method, path = str(event["httpMethod"]), str(event["path"])
        values = event.get("multiValueQueryStringParameters") or {}
        query = urlencode([(k, v) for k, vs in values.items() for v in vs])
    else:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body
    except (binascii.Error, ValueError):
        return None
    payload = raw if isinstance(raw, bytes) else str(raw).encode()
    host, port = split_host(headers.get("host", ""), _int(headers.get("x-forwarded-port"), 443))
    return HttpRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=payload,
        host=host,
        port=port,
        request_id=request_id or context.get("requestId"),
    )


def event_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": response.body.decode(),
        "isBase64Encoded": False,
    }


class LkmHandler:
    """``handler.handler``: builds the API on the first event; never raises."""

    def __init__(self, build: Callable[[], LkmApi]) -> None:
        self._build = build
        self._api: LkmApi | None = None

    def __call__(self, event: object, context: object = None) -> dict[str, Any]:
        request = request_from_event(event, getattr(context, "aws_request_id", None))
        if request is None:
            return event_response(error_response(400, "not a function URL request"))
        try:
            if self._api is None:
                self._api = self._build()
        except Exception as exc:
            message = getattr(exc, "message", None) or type(exc).__name__
            log.error("the LKM endpoint could not start: %s", message)
            response = error_response(500, "the LKM endpoint is misconfigured", code="INTERNAL")
            return event_response(response)
        return event_response(self._api.handle(request))


# ---------------------------------------------------------------- loopback server


def serve(
    api: LkmApi,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    ready: Callable[[ThreadingHTTPServer], None] | None = None,
) -> None:
    """Serve ``api`` on 127.0.0.1:``port`` until interrupted (``ready`` gets the server)."""
    server = make_server(api, port, tls_cert=tls_cert, tls_key=tls_key)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever()
    finally:
        server.server_close()


def make_server(
    api: LkmApi, port: int, *, tls_cert: str | None = None, tls_key: str | None = None
) -> ThreadingHTTPServer:
    handler = type("LkmRequestHandler", (_RequestHandler,), {"api": api})
    server = ThreadingHTTPServer((LOOPBACK, port), handler)
    server.daemon_threads = True
    if tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls_cert, tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


class _RequestHandler(BaseHTTPRequestHandler):
    api: LkmApi
    protocol_version = "HTTP/1.1"
    server_version = "kmsbridge-lkm"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only; the audit line has the decision.
        log.debug("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        length = _int(self.headers.get("Content-Length"), 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(error_response(413, "the request body is too large"))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        default_port = int(getattr(self.server, "server_port", 0))
        host, port = split_host(self.headers.get("Host", ""), default_port)
        request = HttpRequest(
            method=self.command,
            path=target.path,
            query=target.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            host=host or LOOPBACK,
            port=port,
        )
        self._send(self.api.handle(request))

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def split_host(value: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` of a Host header (IPv6 in brackets), lowercase."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[: end + 1], value[end + 1 :]
        return host, _int(rest[1:], default_port) if rest.startswith(":") else default_port
    host, sep, port = value.partition(":")
    return host, _int(port, default_port) if sep else default_port


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
