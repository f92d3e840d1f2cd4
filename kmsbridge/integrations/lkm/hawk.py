"""Hawk 1 request authentication (the header scheme only), stricter than the LKM reference.

What a request must pass, in this order (cheapest first, and nothing is remembered for a
request whose MAC is wrong):

1. ``Authorization: Hawk id="..", ts="..", nonce="..", [hash=".."], [ext=".."], mac=".."``
   parses: known attributes only, each once, values from Hawk's character set, bounded.
2. The credential id is known (the lookup is the caller's: ``Credentials``).
3. The MAC is HMAC-SHA256 of the Hawk 1 normalized string, compared in constant time::

       hawk.1.header\\n ts\\n nonce\\n METHOD\\n resource\\n host\\n port\\n hash\\n ext\\n

   resource = path and query as sent; host and port = what the client addressed.
4. The payload hash, when the client sent one, matches the body and content type
   (``hawk.1.payload\\n content-type\\n body\\n``, SHA-256, base64).
5. The timestamp is within ``skew`` seconds of the server's clock. Hawk's 401 for a stale
   timestamp carries the server's time, MACed (``tsm``), so an honest client can re-sync.
6. The (id, nonce) pair was not seen within the window (``NonceStore``): a replay fails.

Every failure is ``HawkError`` with a reason for the audit line; the HTTP answer is one
401 whatever the reason, so an attacker learns nothing about which check failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kmsbridge.integrations.lkm.nonces import NonceStore

HAWK_ALGORITHM = "sha256"
DEFAULT_SKEW_SECONDS = 60
MAX_HEADER_CHARS = 4096
_ATTRIBUTES = frozenset({"id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg"})
_REQUIRED = ("id", "ts", "nonce", "mac")
# Hawk's attribute grammar: name="value", the value without '"' or '\'.
_ATTRIBUTE_RE = re.compile(r'\s*(\w+)="([^"\\]*)"\s*(?:,|$)')
_VALUE_RE = re.compile(r"[ \w!#$%&'()*+,\-./:;<=>?@\[\]^`{|}~]*")
_TS_RE = re.compile(r"[0-9]{1,12}")
_ID_RE = re.compile(r"[A-Za-z0-9._~-]{6,128}")
_MAX_NONCE_CHARS = 128


class HawkError(Exception):
    """A request that does not authenticate. ``reason`` is for the audit line only;
    ``credential`` is set once the MAC checked out (a stale or replayed request)."""

    def __init__(
        self, reason: str, *, challenge: str = "Hawk", credential: Credential | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge
        self.credential = credential


@dataclass(frozen=True)
class Credential:
    """A Hawk credential: its id, the org it acts for, and the shared key (never printed)."""

    id: str
    org: str
    key: bytes = field(repr=False)


Credentials = Callable[[str], Credential | None]


@dataclass(frozen=True)
class HawkRequest:
    """What the MAC covers, as the client addressed it, plus the body for the hash."""

    method: str
    resource: str
    host: str
    port: int
    authorization: str | None
    content_type: str = ""
    body: bytes = field(default=b"", repr=False)


def validate_credential_id(credential_id: object) -> str:
    """6-128 characters of ``A-Z a-z 0-9 . _ ~ -`` (the reference asks for more than 5)."""
    if not isinstance(credential_id, str) or not _ID_RE.fullmatch(credential_id):
        raise ValueError("a Hawk id is 6-128 characters of A-Z, a-z, 0-9, '.', '_', '~' or '-'")
    return credential_id


def parse_authorization(header: str | None) -> dict[str, str]:
    """The attributes of a ``Hawk`` Authorization header, or HawkError."""
    if not header:
        raise HawkError("no Authorization header")
    if len(header) > MAX_HEADER_CHARS:
        raise HawkError("Authorization header too long")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "hawk":
        raise HawkError("Authorization scheme is not Hawk")
    attributes: dict[str, str] = {}
    position, rest = 0, rest.strip()
    while position < len(rest):
        match = _ATTRIBUTE_RE.match(rest, position)
        if match is None or match.end() == position:
            raise HawkError("malformed Hawk header")
        name, value = match.group(1), match.group(2)
        if name not in _ATTRIBUTES or name in attributes or not _VALUE_RE.fullmatch(value):
            raise HawkError("unknown, repeated or invalid Hawk attribute")
        attributes[name] = value
        position = match.end()
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        raise HawkError(f"Hawk header lacks {missing[0]}")
    if "app" in attributes or "dlg" in attributes:
        raise HawkError("Oz app/dlg attributes are not supported")
    if not _TS_RE.fullmatch(attributes["ts"]) or len(attributes["nonce"]) > _MAX_NONCE_CHARS:
        raise HawkError("invalid ts or nonce")
    return attributes


def normalized_string(attributes: dict[str, str], request: HawkRequest) -> bytes:
    """The Hawk 1 header string the MAC is computed over."""
    lines = [
        "hawk.1.header",
        attributes["ts"],
        attributes["nonce"],
        request.method.upper(),
        request.resource,
        request.host.lower(),
        str(request.port),
        attributes.get("hash", ""),
        attributes.get("ext", ""),  # the value grammar has no '\\' or newline to escape
    ]
    return ("\n".join(lines) + "\n").encode()


def payload_hash(content_type: str, body: bytes) -> str:
    """Hawk's payload hash: SHA-256 over the type (no parameters, lowercase) and the body."""
    mime = content_type.split(";", 1)[0].strip().lower()
    digest = hashlib.sha256(b"hawk.1.payload\n" + mime.encode() + b"\n" + body + b"\n")
    return base64.b64encode(digest.digest()).decode()


def mac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def stale_challenge(key: bytes, now: float) -> str:
    """Hawk's WWW-Authenticate for a stale timestamp: the server's time and its MAC."""
    ts = str(int(now))
    tsm = mac(key, f"hawk.1.ts\n{ts}\n".encode())
    return f'Hawk ts="{ts}", tsm="{tsm}", error="Stale timestamp"'


class HawkVerifier:
    """Checks requests against credentials, a timestamp window and a nonce store."""

    def __init__(
        self,
        credentials: Credentials,
        nonces: NonceStore,
        *,
        skew: float = DEFAULT_SKEW_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < skew <= 600:
            raise ValueError("the Hawk timestamp window must be 1-600 seconds")
        self._credentials = credentials
        self._nonces = nonces
        self.skew = skew
        self._now = now

    def verify(self, request: HawkRequest) -> Credential:
        """The request's credential, or HawkError (see the module docstring for the order)."""
        attributes = parse_authorization(request.authorization)
        try:
            credential_id = validate_credential_id(attributes["id"])
        except ValueError:
            raise HawkError("invalid Hawk id") from None
        credential = self._credentials(credential_id)
        if credential is None:
            raise HawkError("unknown Hawk id")
        expected = mac(credential.key, normalized_string(attributes, request))
        if not hmac.compare_digest(expected.encode(), attributes["mac"].encode()):
            raise HawkError("bad MAC")
        sent_hash = attributes.get("hash")
        if sent_hash is not None:
            computed = payload_hash(request.content_type, request.body)
            if not hmac.compare_digest(computed.encode(), sent_hash.encode()):
                raise HawkError("payload hash does not match the body", credential=credential)
        now = self._now()
        ts = int(attributes["ts"])
        if abs(now - ts) > self.skew:
            challenge = stale_challenge(credential.key, now)
            raise HawkError("stale timestamp", challenge=challenge, credential=credential)
        if not self._nonces.first_use(credential.id, attributes["nonce"], ts, now=now):
            raise HawkError("replayed nonce", credential=credential)
        return credential
