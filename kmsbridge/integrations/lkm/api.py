"""The Genesys Cloud Local Key Manager contract over HTTP, for any front end.

Routes (``/key-management/v1``, as the reference service MyPureCloud/local-key-manager):

- ``GET /health`` -> ``OK`` (no authentication, as the reference).
- ``POST /auth`` ``{"id"}`` -> ``{"id", "authKey", "algorithm": "sha256"}``: open only when
  ``LkmConfig.register_org`` is set (a first registration); else 404. Credentials are made
  with ``kmsbridge lkm credential create`` otherwise.
- ``POST /keypair`` -> ``{"id", "publicKey", "dateCreated"}`` (Hawk; only when
  ``allow_keypair_create``: creating a KEK needs kms:GenerateDataKey, which the serving
  role does not have by default; ``kmsbridge lkm keypair create`` does it otherwise).
- ``GET /keypair``, ``GET /keypair/{id}`` (Hawk).
- ``POST /decrypt[?decryptType=pkcs1]`` ``{"keypairId", "body"[, "decryptType"]}`` ->
  ``{"body"}`` (Hawk): RSA-OAEP-SHA1 by default, PKCS#1 v1.5 with ``pkcs1``.
- ``OPTIONS /decrypt`` (Hawk) -> the reference's example document.

Errors: 400 ``{"message", "status"}`` (the reference's messages for its cases), 401 for
any authentication failure (one body whatever failed), 404/405/413 for the HTTP shape,
and our codes on 5xx: ``{"message", "status", "code", "retryable"}``. Never a trace, never
a key. One audit line per decision: the decrypt's comes from the decryptor, the others
from here, with the ``PureCloud-User-Id`` header (unauthenticated, so sanitized).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from kmsbridge.audit import audit
from kmsbridge.errors import InvalidRequest, KmsBridgeError
from kmsbridge.formats import PADDING_LKM_OAEP, PADDING_PKCS1V15
from kmsbridge.integrations.lkm.hawk import Credential, HawkError, HawkRequest, HawkVerifier
from kmsbridge.integrations.lkm.service import LkmService

PREFIX = "/key-management/v1"
MAX_BODY_BYTES = 64 * 1024
MAX_CIPHERTEXT_BYTES = 1024  # RSA-4096 at most; Genesys uses RSA-3072 (384 bytes)
UNAUTHORIZED = "you are not authorized to this endpoint"
MISSING_FIELDS = "Decrypt body and keypairId must be filled out"
BAD_DECRYPT_TYPE = 'If provided, decryptType must be either "pkcs1" or null'
NO_KEYPAIR = "No key pair found with the id provided"
BAD_AUTH_ID = "authentication needs a unique id and must be over 5 characters"
# What the reference answers to OPTIONS on the decrypt path (its Jackson serialization
# of an empty request model and an example response).
OPTIONS_DOCUMENT: dict[str, Any] = {
    "encryptBody": {"keypairId": None, "body": None, "decryptType": None},
    "decryptResponse": {"body": "Decrypted Response"},
}
_STATUS_BY_CODE = {
    "INVALID_REQUEST": 400,
    "NOT_FOUND": 404,
    "WRONG_ORG": 400,
    "INTEGRITY": 400,
    "ACCESS_REVOKED": 503,
    "KMS_UNAVAILABLE": 503,
    "UNAVAILABLE": 503,
}
log = logging.getLogger("kmsbridge.lkm")


class BadRequest(Exception):
    """A 400 with one of the reference's messages."""


@dataclass(frozen=True)
class HttpRequest:
    """One request as any front end received it. ``host``/``port``: what the client addressed."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lowercase
    body: bytes = field(repr=False)
    host: str
    port: int
    request_id: str | None = None

    def query_values(self, name: str) -> list[str]:
        return parse_qs(self.query, keep_blank_values=True).get(name, [])


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LkmConfig:
    """Deployment choices of the endpoint (services.py reads them from the environment).

    ``public_host``: the host name clients address (and sign), when a custom domain or a
    proxy stands in front; the port is then 443. Otherwise the request's Host header.
    """

    register_org: str | None = None
    allow_keypair_create: bool = False
    public_host: str | None = None


def json_response(
    status: int, value: object, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = json.dumps(value, separators=(",", ":")).encode()
    return HttpResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


def error_response(status: int, message: str, **extra: object) -> HttpResponse:
    return json_response(status, {"message": message, "status": status, **extra})


class LkmApi:
    """Routes requests to the service after Hawk; never raises."""

    def __init__(self, service: LkmService, verifier: HawkVerifier, config: LkmConfig) -> None:
        self.service = service
        self.verifier = verifier
        self.config = config

    def handle(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        route = self._route(request)
        if isinstance(route, HttpResponse):
            return route
        name, handler, authenticated = route
        fields: dict[str, Any] = {
            "op": f"lkm-{name}",
            "org": None,
            "user": _user(request),
            "_started": started,
        }
        try:
            if len(request.body) > MAX_BODY_BYTES:
                return error_response(413, "the request body is too large")
            credential = self._authenticate(request, fields) if authenticated else None
            return handler(self, request, credential, fields)
        except HawkError as exc:
            if exc.credential is not None:  # the MAC was right: say whose request it was
                fields.update(org=exc.credential.org, credential=exc.credential.id)
            self._audit(fields, "UNAUTHORIZED", request, reason=exc.reason)
            headers = {"WWW-Authenticate": exc.challenge}
            return json_response(401, {"message": UNAUTHORIZED, "status": 401}, headers)
        except BadRequest as exc:
            self._audit(fields, "INVALID_REQUEST", request)
            return error_response(400, str(exc))
        except KmsBridgeError as exc:
            if not fields.get("_audited"):
                self._audit(fields, exc.code, request)
            status = _STATUS_BY_CODE.get(exc.code, 500)
            return error_response(status, exc.message, code=exc.code, retryable=exc.retryable)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1:]
            log.error(
                "unexpected %s at %s (request %s)",
                type(exc).__name__,
                ":".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in where),
                request.request_id,
            )
            self._audit(fields, "INTERNAL", request)
            message = f"unexpected failure (request id {request.request_id})"
            return error_response(500, message, code="INTERNAL", retryable=False)

    # ------------------------------------------------------------ routes

    def _route(self, request: HttpRequest) -> tuple[str, _Handler, bool] | HttpResponse:
        if not request.path.startswith(PREFIX + "/"):
            return error_response(404, "not found")
        rest = request.path[len(PREFIX) :]
        path = "/keypair/{id}" if rest.startswith("/keypair/") and rest.count("/") == 2 else rest
        route = ROUTES.get((request.method.upper(), path))
        if route is not None:
            return route
        if any(p == path for _, p in ROUTES):
            return error_response(405, "method not allowed")
        return error_response(404, "not found")

    def health(
        self, request: HttpRequest, _: Credential | None, __: dict[str, Any]
    ) -> HttpResponse:
        return HttpResponse(200, b"OK", {"Content-Type": "text/plain"})

    def register(
        self, request: HttpRequest, _: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        org = self.config.register_org
        if org is None:
            return error_response(404, "not found")
        body = _json_object(request.body)
        credential_id = body.get("id")
        if not isinstance(credential_id, str) or len(credential_id) < 6:
            raise BadRequest(BAD_AUTH_ID)
        fields.update(org=org, credential=credential_id)
        try:
            credential = self.service.create_credential(org, credential_id)
        except InvalidRequest:
            raise BadRequest(BAD_AUTH_ID) from None
        self._audit(fields, "ok", request)
        return json_response(200, _credential_json(credential))

    def create_keypair(
        self, request: HttpRequest, credential: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        assert credential is not None
        if not self.config.allow_keypair_create:
            message = "key pairs are created with `kmsbridge lkm keypair create ORG` here"
            self._audit(fields, "FORBIDDEN", request)
            return error_response(403, message)
        keypair = self.service.create_keypair(credential.org)
        self._audit({**fields, "kek": keypair.kek_id, "keypair": keypair.id}, "ok", request)
        return json_response(200, keypair.to_json())

    def list_keypairs(
        self, request: HttpRequest, credential: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        assert credential is not None
        keypairs = self.service.keypairs(credential.org)
        self._audit(fields, "ok", request)
        return json_response(200, [k.to_json() for k in keypairs])

    def get_keypair(
        self, request: HttpRequest, credential: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        assert credential is not None
        keypair_id = request.path.rsplit("/", 1)[1]
        fields["keypair"] = keypair_id if _is_uuid(keypair_id) else None
        keypair = self.service.keypair(credential.org, keypair_id) if fields["keypair"] else None
        if keypair is None:
            self._audit(fields, "NOT_FOUND", request)
            return error_response(404, NO_KEYPAIR)
        self._audit({**fields, "kek": keypair.kek_id}, "ok", request)
        return json_response(200, keypair.to_json())

    def decrypt(
        self, request: HttpRequest, credential: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        assert credential is not None
        body = _json_object(request.body)
        keypair_id, ciphertext_b64 = body.get("keypairId"), body.get("body")
        if not isinstance(keypair_id, str) or not isinstance(ciphertext_b64, str):
            raise BadRequest(MISSING_FIELDS)
        padding = _padding(request.query_values("decryptType"), body.get("decryptType"))
        ciphertext = _ciphertext(ciphertext_b64)
        keypair = self.service.keypair(credential.org, keypair_id) if _is_uuid(keypair_id) else None
        if keypair is None:
            raise BadRequest(NO_KEYPAIR)
        fields["_audited"] = True  # the decryptor writes this decision's audit line
        key = self.service.decrypt(
            keypair,
            ciphertext,
            padding,
            request_id=request.request_id,
            credential=credential.id,
            user=fields.get("user"),
        )
        return json_response(200, {"body": base64.b64encode(key).decode()})

    def options(
        self, request: HttpRequest, credential: Credential | None, fields: dict[str, Any]
    ) -> HttpResponse:
        self._audit(fields, "ok", request)
        return json_response(200, OPTIONS_DOCUMENT)

    # ------------------------------------------------------------ helpers

    def _authenticate(self, request: HttpRequest, fields: dict[str, Any]) -> Credential:
        hawk = HawkRequest(
            method=request.method,
            resource=request.path + (f"?{request.query}" if request.query else ""),
            host=self.config.public_host or request.host,
            port=443 if self.config.public_host else request.port,
            authorization=request.headers.get("authorization"),
            content_type=request.headers.get("content-type", ""),
            body=request.body,
        )
        credential = self.verifier.verify(hawk)
        fields.update(org=credential.org, credential=credential.id)
        return credential

    def _audit(
        self, fields: dict[str, Any], outcome: str, request: HttpRequest, **extra: Any
    ) -> None:
        values = {k: v for k, v in fields.items() if not k.startswith("_")}
        audit(
            **values,
            outcome=outcome,
            duration_ms=(time.perf_counter() - fields["_started"]) * 1000,
            request_id=request.request_id,
            **extra,
        )


_Handler = Callable[[LkmApi, HttpRequest, Credential | None, dict[str, Any]], HttpResponse]
# (method, path under PREFIX) -> (audit op suffix, handler, Hawk required)
ROUTES: dict[tuple[str, str], tuple[str, _Handler, bool]] = {
    ("GET", "/health"): ("health", LkmApi.health, False),
    ("POST", "/auth"): ("register", LkmApi.register, False),
    ("POST", "/keypair"): ("keypair-create", LkmApi.create_keypair, True),
    ("GET", "/keypair"): ("keypair-list", LkmApi.list_keypairs, True),
    ("GET", "/keypair/{id}"): ("keypair-get", LkmApi.get_keypair, True),
    ("POST", "/decrypt"): ("decrypt", LkmApi.decrypt, True),
    ("OPTIONS", "/decrypt"): ("decrypt-options", LkmApi.options, True),
}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(MISSING_FIELDS)
    return value


def _padding(query: list[str], in_body: object) -> str:
    """``decryptType``: the query string (the reference), or the body (older callers)."""
    values = set(query) | ({in_body} if in_body is not None else set())
    if len(values) > 1 or len(query) > 1 or not values <= {"pkcs1"}:
        raise BadRequest(BAD_DECRYPT_TYPE)
    return PADDING_PKCS1V15 if values else PADDING_LKM_OAEP


def _ciphertext(value: str) -> bytes:
    if len(value) > 4 * -(-MAX_CIPHERTEXT_BYTES // 3):
        raise BadRequest("body is longer than an RSA ciphertext")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("body must be base64") from None
    if not raw:
        raise BadRequest(MISSING_FIELDS)
    return raw


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def _user(request: HttpRequest) -> str | None:
    """The PureCloud-User-Id header for the audit line: not covered by the MAC, so bounded."""
    value = request.headers.get("purecloud-user-id")
    if value is None:
        return None
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")
    return value if 0 < len(value) <= 128 and set(value) <= allowed else "<invalid>"


def _credential_json(credential: Credential) -> dict[str, str]:
    return {"id": credential.id, "authKey": credential.key.decode(), "algorithm": "sha256"}
