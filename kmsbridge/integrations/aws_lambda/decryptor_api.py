"""The decryptor Lambda's contract: validate the event, run one op, answer in JSON.

Ops (DESIGN.md "The decryptor"): ``unwrap`` (a recording's data key, sealed to the
caller's ``response_key`` when one is given), ``decrypt`` (a pre-signed URL of a
short-lived plaintext copy in S3, deleted as soon as any op of this container meets an
access refusal for its org) and ``access-check`` (a canary unwrap of each KEK of
the org, and each KMS key's state). Every field is checked before any AWS call; a bad one
is ``INVALID_REQUEST`` with a sentence naming it. Every outcome is a JSON object:
``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message", "retryable"}}``;
nothing raises to the runtime, and no stack trace or secret reaches the caller.

An org outside ``KMSBRIDGE_ALLOWED_ORGS`` (when set) is ``INVALID_REQUEST``: the list is a
deployment policy checked with the other fields, before any AWS call. So is an ``unwrap``
without a ``response_key`` when ``KMSBRIDGE_REQUIRE_SEALED=1``: no bare data key ever leaves.

Observability: the decryptor's audit line per key release (with the Lambda request id),
an audit line for every other decision, and one CloudWatch embedded-metric-format line
per request (``Requests`` and ``Duration`` by ``Op`` and ``Outcome``), plus ``ColdStart``
on a container's first event. See ``integrations.aws_lambda.telemetry``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from kmsbridge.audit import audit
from kmsbridge.aws import AwsClients
from kmsbridge.crypto.sealing import PUBLIC_KEY_BYTES, ResponseKey, check_kem
from kmsbridge.decryptor.access import access_state
from kmsbridge.errors import InternalError, InvalidRequest, KmsBridgeError
from kmsbridge.formats import MAX_HEADER_BYTES, validate_org
from kmsbridge.integrations.aws_lambda import telemetry as lambda_telemetry
from kmsbridge.integrations.s3 import (
    S3Location,
    decrypt_to_playback_object,
    delete_playback_copies,
)
from kmsbridge.services import Services, Settings

OPS = ("unwrap", "decrypt", "access-check")
MIN_EXPIRES_IN, MAX_EXPIRES_IN, DEFAULT_EXPIRES_IN = 60, 3600, 300
_FIELDS = {
    "unwrap": {"op", "org", "header", "response_key"},
    "decrypt": {"op", "org", "source", "expires_in"},
    "access-check": {"op", "org"},
}
_MAX_SOURCE_KEY = 1024
log = logging.getLogger("kmsbridge.lambda")


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A validated event: the op, the org, and that op's fields."""

    op: str
    org: str
    header: bytes = field(default=b"", repr=False)
    kem: str | None = None
    public_key: bytes = field(default=b"", repr=False)
    source: S3Location | None = None
    expires_in: int = DEFAULT_EXPIRES_IN

    @property
    def response_key(self) -> ResponseKey | None:
        return None if self.kem is None else ResponseKey(self.kem, self.public_key)


def parse_request(
    event: object, allowed_orgs: frozenset[str] | None = None, *, require_sealed: bool = False
) -> Request:
    """Check every field of an event, cheapest first; no AWS call."""
    if not isinstance(event, dict):
        raise InvalidRequest("the event must be a JSON object")
    op = event.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise InvalidRequest(f"op must be one of {', '.join(OPS)}")
    unexpected = sorted(str(k) for k in event if k not in _FIELDS[op])
    if unexpected:
        raise InvalidRequest(f"unexpected field {unexpected[0]!r} for op {op!r}")
    if "org" not in event:
        raise InvalidRequest("org is missing")
    org = validate_org(event["org"])
    if allowed_orgs is not None and org not in allowed_orgs:
        raise InvalidRequest(f"org {org!r} is not served by this decryptor")
    if op == "unwrap":
        return _parse_unwrap(event, org, require_sealed)
    if op == "decrypt":
        return _parse_decrypt(event, org)
    return Request(op, org)


def _parse_unwrap(event: dict[str, Any], org: str, require_sealed: bool) -> Request:
    header = _base64_field(event, "header", MAX_HEADER_BYTES)
    response_key = event.get("response_key")
    if response_key is None:
        if require_sealed:
            raise InvalidRequest(
                "this decryptor releases data keys only sealed (KMSBRIDGE_REQUIRE_SEALED=1): "
                "send a response_key"
            )
        return Request("unwrap", org, header=header)
    if not isinstance(response_key, dict) or set(response_key) != {"kem", "public_key"}:
        raise InvalidRequest("response_key must be an object with exactly kem and public_key")
    kem = check_kem(response_key["kem"])
    public_key = _base64_field(response_key, "public_key", PUBLIC_KEY_BYTES[kem], "response_key.")
    ResponseKey.parse(kem, public_key)  # size, encoding, small-order X25519 points
    return Request("unwrap", org, header=header, kem=kem, public_key=public_key)


def _parse_decrypt(event: dict[str, Any], org: str) -> Request:
    source = event.get("source")
    if source is None:
        raise InvalidRequest("source is missing")
    if not isinstance(source, str) or not source.startswith("s3://"):
        raise InvalidRequest("source must be an s3://bucket/key URL")
    bucket, _, key = source[5:].partition("/")
    if not _valid_bucket(bucket) or not 0 < len(key) <= _MAX_SOURCE_KEY or not key.isprintable():
        raise InvalidRequest(
            f"source must be s3://bucket/key with a valid bucket and a key of 1-{_MAX_SOURCE_KEY}"
            " printable characters"
        )
    expires_in = event.get("expires_in", DEFAULT_EXPIRES_IN)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN
    ):
        raise InvalidRequest(
            f"expires_in must be a whole number of seconds from {MIN_EXPIRES_IN} to "
            f"{MAX_EXPIRES_IN}"
        )
    return Request("decrypt", org, source=S3Location(bucket, key), expires_in=expires_in)


def _valid_bucket(bucket: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    return 3 <= len(bucket) <= 63 and set(bucket) <= allowed and bucket[0] not in ".-"


def _base64_field(obj: dict[str, Any], name: str, max_bytes: int, prefix: str = "") -> bytes:
    value = obj.get(name)
    label = prefix + name
    if value is None:
        raise InvalidRequest(f"{label} is missing")
    if not isinstance(value, str):
        raise InvalidRequest(f"{label} must be a base64 string")
    if len(value) > 4 * -(-max_bytes // 3):
        raise InvalidRequest(f"{label} is longer than {max_bytes} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{label} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != value:  # padded, canonical: one text per value
        raise InvalidRequest(f"{label} is not valid base64")
    if not raw:
        raise InvalidRequest(f"{label} is empty")
    if len(raw) > max_bytes:
        raise InvalidRequest(f"{label} is longer than {max_bytes} bytes")
    return raw


# ---------------------------------------------------------------- the app


class LambdaApp:
    """Runs validated requests against one decryptor; built once per container."""

    def __init__(self, services: Services) -> None:
        self.config = services.settings
        self.clients = services.clients
        self.kms = services.kms
        self.decryptor = services.decryptor
        self._s3: Any = None
        if self.config.playback_bucket is not None:
            self.decryptor.refusal_listeners.append(self.purge_playback_copies)

    @property
    def s3(self) -> Any:
        """An S3 client that signs URLs with SigV4 (botocore may presign with SigV2)."""
        if self._s3 is None:
            settings = self.clients.settings
            self._s3 = self.clients.session.client(
                "s3",
                region_name=self.clients.region,
                endpoint_url=settings.endpoint_url,
                config=settings.client_config().merge(Config(signature_version="s3v4")),
            )
        return self._s3

    def purge_playback_copies(self, org: str) -> None:
        """After an access refusal for ``org``: its plaintext copies go now, not at expiry."""
        assert self.config.playback_bucket is not None
        started = time.perf_counter()
        try:
            deleted = delete_playback_copies(self.s3, self.config.playback_bucket, org)
        except KmsBridgeError as exc:
            audit(op="playback-purge", org=org, outcome=exc.code, duration_ms=_ms(started))
            raise
        audit(op="playback-purge", org=org, outcome="ok", duration_ms=_ms(started), deleted=deleted)

    def handle(self, event: object, request_id: str | None = None) -> dict[str, Any]:
        """One response for one event; never raises."""
        started = time.perf_counter()
        op = event.get("op") if isinstance(event, dict) else None
        op_name = op if isinstance(op, str) and op in OPS else "invalid"
        try:
            request = parse_request(
                event, self.config.allowed_orgs, require_sealed=self.config.require_sealed
            )
        except KmsBridgeError as exc:
            _audit_refusal(op_name, event, exc.code, started, request_id)
            response = _error(exc)
        else:
            response = self._run(request, request_id, started)
        outcome = "ok" if response["ok"] else response["error"]["code"]
        lambda_telemetry.emit_request(op_name, outcome, (time.perf_counter() - started) * 1000)
        return response

    def _run(self, request: Request, request_id: str | None, started: float) -> dict[str, Any]:
        try:
            return OP_HANDLERS[request.op](self, request, request_id, started)
        except KmsBridgeError as exc:
            return _error(exc)
        except Exception as exc:
            # Type and place only: an exception's text could quote data, never the caller's.
            where = traceback.extract_tb(exc.__traceback__)[-1:]
            log.error(
                "unexpected %s at %s (request %s)",
                type(exc).__name__,
                ":".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in where),
                request_id,
            )
            return _error(InternalError(f"unexpected failure (request id {request_id})"))

    def unwrap(self, request: Request, request_id: str | None, started: float) -> dict[str, Any]:
        key = self.decryptor.unwrap(
            request.org, request.header, request_id=request_id, response_key=request.response_key
        )
        if key.sealed_data_key is not None:
            sealed = base64.b64encode(key.sealed_data_key).decode()
            return {"ok": True, "kek": key.kek_id, "sealed_data_key": sealed}
        if self.config.require_sealed:  # parse_request refused it already; never a bare key
            raise InvalidRequest("KMSBRIDGE_REQUIRE_SEALED=1: no data key leaves unsealed")
        return {"ok": True, "kek": key.kek_id, "data_key": base64.b64encode(key.data_key).decode()}

    def decrypt(self, request: Request, request_id: str | None, started: float) -> dict[str, Any]:
        assert request.source is not None
        bucket = self.config.playback_bucket
        fields: dict[str, Any] = {"source_bucket": request.source.bucket}
        try:
            if bucket is None:
                raise InternalError("decrypt is not configured: KMSBRIDGE_PLAYBACK_BUCKET is unset")
            result = decrypt_to_playback_object(
                self.s3,
                request.source,
                org=request.org,
                data_keys=lambda org, header: self.decryptor.unwrap(
                    org, header, op="decrypt-key", request_id=request_id
                ).data_key,
                bucket=bucket,
                expires_in=request.expires_in,
            )
        except KmsBridgeError as exc:
            _audit_op(request, exc.code, started, request_id, **fields)
            raise
        info = result.info
        _audit_op(
            request,
            "ok",
            started,
            request_id,
            kek=info.kek_id,
            recording=info.recording_id,
            message_id=info.message_id,
            bytes=info.plaintext_bytes,
            **fields,
        )
        return {"ok": True, "url": result.url, "expires_in": request.expires_in}

    def access_check(
        self, request: Request, request_id: str | None, started: float
    ) -> dict[str, Any]:
        try:
            store = self.decryptor.store
            arns = list(store.get_org(request.org).kms_keys)
            arns += [arn for record in store.list_keks(request.org) for arn in record.kms_keys]
            checks = self.decryptor.check_access(request.org)
        except KmsBridgeError as exc:
            _audit_op(request, exc.code, started, request_id)
            raise
        arns = list(dict.fromkeys(arns))
        keys = [{"arn": arn, "state": self._key_state(arn)} for arn in arns]
        keks = [{"kek": c.kek_id, "state": c.state, "outcome": c.outcome} for c in checks]
        state = access_state([c.outcome for c in checks])
        _audit_op(request, "ok", started, request_id, state=state)
        return {"ok": True, "org": request.org, "state": state, "kms_keys": keys, "keks": keks}

    def _key_state(self, arn: str) -> str:
        try:
            return self.kms.key_state(arn)
        except KmsBridgeError as exc:
            return exc.code


OP_HANDLERS: dict[str, Callable[[LambdaApp, Request, str | None, float], dict[str, Any]]] = {
    "unwrap": LambdaApp.unwrap,
    "decrypt": LambdaApp.decrypt,
    "access-check": LambdaApp.access_check,
}


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _error(exc: KmsBridgeError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


def _audit_op(
    request: Request, outcome: str, started: float, request_id: str | None, **extra: Any
) -> None:
    audit(
        op=request.op,
        org=request.org,
        outcome=outcome,
        duration_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        **extra,
    )


def _audit_refusal(
    op: str, event: object, outcome: str, started: float, request_id: str | None
) -> None:
    org = event.get("org") if isinstance(event, dict) else None
    try:
        org = validate_org(org)
    except InvalidRequest:
        org = None  # never log an unchecked value
    audit(
        op=op,
        org=org,
        outcome=outcome,
        duration_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        stage="validation",
    )


# ---------------------------------------------------------------- the runtime entry


class LambdaHandler:
    """``handler.handler``: the app (settings, clients, decryptor) built once per container.

    ``prepare()`` builds it at init, outside any request; a failure there is kept quiet and
    reported by the first event, which builds again. ``forget()`` drops it with every
    cached key (before a SnapStart snapshot).
    """

    def __init__(self, build: Callable[[], LambdaApp] | None = None) -> None:
        self._build = build or build_app
        self._app: LambdaApp | None = None
        self._cold = True

    def prepare(self) -> bool:
        """Build the app now if it is not built; False if it could not be (yet)."""
        if self._app is None:
            try:
                self._app = self._build()
            except Exception:  # reported with the first event, which builds again
                return False
        return True

    def forget(self) -> None:
        """Drop every cached KEK and data key, then the app with its clients."""
        app, self._app = self._app, None
        if app is not None:
            app.decryptor.keks.clear()
            app.decryptor.data_keys.clear()

    @property
    def app(self) -> LambdaApp | None:
        return self._app

    def __call__(self, event: object, context: object = None) -> dict[str, Any]:
        request_id = getattr(context, "aws_request_id", None)
        if self._cold:
            self._cold = False
            lambda_telemetry.emit_cold_start()
        try:
            if self._app is None:
                self._app = self._build()
        except KmsBridgeError as exc:
            return _start_failure(exc.message)
        except Exception as exc:
            return _start_failure(type(exc).__name__)
        return self._app.handle(event, request_id)


def _start_failure(reason: str) -> dict[str, Any]:
    """Every event a decryptor that cannot start refuses: one error line and one metric each,
    so an alarm on ``StartFailures`` fires however long the misconfiguration lasts."""
    log.error("the decryptor could not start: %s", reason)
    lambda_telemetry.emit_start_failure()
    return _error(InternalError(f"the decryptor could not start: {reason}"))


def build_app(clients: AwsClients | None = None) -> LambdaApp:
    """Settings from the environment; clients with the standard credential chain."""
    settings = Settings.from_env()
    services = Services(settings, clients=clients)
    services.decryptor  # noqa: B018 - build clients, table and decryptor now, once
    services.clients.client("kms")  # the local region's, which unwraps first
    return LambdaApp(services)
