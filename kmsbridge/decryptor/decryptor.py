"""The just-in-time decryptor: releases a recording's data key, and nothing else.

``unwrap(org, header)`` reads the KEK item, asks KMS to unwrap the KEK private key (or
takes it from the cache, at most ``max_age`` seconds after KMS last agreed), RSA-decrypts
the recording's data key, and returns it only if the header's key commitment and
authentication tag check out under it and its context names the org. An access failure
for an org evicts every cached key of that org at once.

The revocation bound (DESIGN.md "Trust boundaries"): no key, KEK or data key, is released
more than ``max_age`` after KMS last agreed to unwrap the KEK it came from. A cached data
key therefore expires with its KEK's cache entry, and one derived while the org was being
evicted is not cached.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.audit import audit
from kmsbridge.crypto.kek import KekPublicKey, load_unwrapped_private_key, unwrap_dek
from kmsbridge.crypto.message import MessageHeader, parse_header, verify_header
from kmsbridge.crypto.sealing import ResponseKey
from kmsbridge.decryptor.access import DESTROYED
from kmsbridge.decryptor.cache import TtlCache
from kmsbridge.errors import (
    AccessRevoked,
    IntegrityError,
    InvalidRequest,
    KmsBridgeError,
    NotFound,
)
from kmsbridge.formats import (
    KEY_TRANSPORT_PADDINGS,
    MAX_HEADER_BYTES,
    key_transport_padding,
    validate_kek_id,
    validate_org,
)
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.records import KekRecord, OrgRecord
from kmsbridge.keys.table import KeyStore
from kmsbridge.recordings.codec import check_org, kek_data_key

log = logging.getLogger("kmsbridge.decryptor")
DEFAULT_MAX_AGE_SECONDS = 60.0
DEFAULT_MAX_KEKS = 256
DEFAULT_MAX_DATA_KEYS = 4096


@dataclass(frozen=True)
class UnwrappedKey:
    """A released data key and what it belongs to. The key itself is never printed."""

    org: str
    kek_id: str
    recording_id: str
    message_id: str
    data_key: bytes = field(repr=False)
    cache: str
    sealed_data_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LoadedKek:
    """An unwrapped KEK private key and what its item says it was made for."""

    private: rsa.RSAPrivateKey = field(repr=False)
    source: str


@dataclass(frozen=True)
class KekCheck:
    """Whether one KEK unwraps right now (no key material)."""

    kek_id: str
    state: str
    outcome: str
    message: str | None = None


class Decryptor:
    """Store + KMS + caches + recording headers. Thread-safe; one per process."""

    def __init__(
        self,
        store: KeyStore,
        kms: KekWrapper,
        *,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        max_keks: int = DEFAULT_MAX_KEKS,
        max_data_keys: int = DEFAULT_MAX_DATA_KEYS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.kms = kms
        self.keks: TtlCache[LoadedKek] = TtlCache(max_age, max_keks, now)
        self.data_keys: TtlCache[UnwrappedKey] = TtlCache(max_age, max_data_keys, now)
        # Called with the org after an access refusal evicted it (the Lambda deletes the
        # org's playback copies). A listener's failure never hides the refusal.
        self.refusal_listeners: list[Callable[[str], None]] = []

    def __call__(self, org: str, header: bytes) -> bytes:
        """A ``DataKeySource`` for ``recordings.decrypt_stream``."""
        return self.unwrap(org, header).data_key

    def unwrap(
        self,
        org: str,
        header: bytes,
        *,
        op: str = "unwrap",
        request_id: str | None = None,
        response_key: ResponseKey | None = None,
    ) -> UnwrappedKey:
        """The data key of the recording whose header (with its tag) is given.

        With ``response_key``, the key is also sealed to it (``sealed_data_key``) before
        the release is audited: a key that could not be sealed was not released, and its
        audit line says why, not ``ok``.
        """
        started = time.perf_counter()
        fields: dict[str, str | None] = {"org": org if isinstance(org, str) else None}
        try:
            result = self._unwrap(org, header, fields)
            if response_key is not None:
                sealed = response_key.seal(
                    result.data_key, org=org, kek_id=result.kek_id, message_id=result.message_id
                )
                result = replace(result, sealed_data_key=sealed)
                fields["sealed"] = response_key.kem
        except KmsBridgeError as exc:
            _audit(op, fields, exc.code, started, request_id)
            raise
        _audit(op, fields, "ok", started, request_id)
        return result

    def key_transport(
        self,
        org: str,
        kek_id: str,
        encrypted_key: bytes,
        padding: str,
        *,
        op: str = "legacy-decrypt",
        recording: str | None = None,
        request_id: str | None = None,
        **audit_fields: str | None,
    ) -> bytes:
        """RSA-decrypt a content key that another system encrypted to an imported or LKM KEK.

        ``padding`` is a key-transport padding name (formats.py); the KEK decrypts only the
        paddings of what it was registered as (its source: ``imported`` for PKCS#7 files,
        ``lkm`` for Genesys Cloud), never a generated recording KEK. The KEK comes through
        the same cache, KMS unwrap and revocation eviction as ``unwrap``, and only the
        content key leaves. Every RSA failure is the same IntegrityError with the same
        message, so the answer is no padding oracle (OpenSSL 3.2+ adds implicit rejection
        for PKCS#1 v1.5 underneath).
        """
        started = time.perf_counter()
        fields: dict[str, str | None] = {
            "org": org,
            "kek": kek_id,
            "recording": recording,
            "padding": padding,
            **audit_fields,
        }
        try:
            validate_kek_id(kek_id)
            rsa_padding = key_transport_padding(padding)
            kek, fields["cache"] = self._kek(validate_org(org), kek_id)
            if padding not in KEY_TRANSPORT_PADDINGS.get(kek.source, frozenset()):
                raise InvalidRequest(
                    f"KEK {kek_id[:12]}… ({kek.source}) is not registered for {padding}"
                )
            try:
                key = kek.private.decrypt(encrypted_key, rsa_padding)
            except Exception:  # any failure: one answer (no oracle on the reason)
                raise IntegrityError("the content key does not decrypt under its KEK") from None
        except KmsBridgeError as exc:
            _audit(op, fields, exc.code, started, request_id)
            raise
        _audit(op, fields, "ok", started, request_id)
        return key

    def check_access(self, org: str) -> list[KekCheck]:
        """Unwrap each live KEK of the org through KMS now (no cache), keep nothing."""
        validate_org(org)
        checks = []
        org_record = self.store.get_org(org)
        for record in self.store.list_keks(org):
            if record.state == "destroyed":
                checks.append(KekCheck(record.kek_id, record.state, DESTROYED))
                continue
            try:
                self._load_kek(org_record, record)
            except KmsBridgeError as exc:
                if isinstance(exc, AccessRevoked):
                    self._access_refused(org)
                checks.append(KekCheck(record.kek_id, record.state, exc.code, exc.message))
            else:
                checks.append(KekCheck(record.kek_id, record.state, "ok"))
        return checks

    def evict_org(self, org: str) -> None:
        self.keks.evict_org(org)
        self.data_keys.evict_org(org)

    def _access_refused(self, org: str) -> None:
        self.evict_org(org)
        for listener in self.refusal_listeners:
            try:
                listener(org)
            except Exception as exc:  # the refusal is what the caller must see
                log.error("a refusal listener failed for org %s: %s", org, type(exc).__name__)

    # ------------------------------------------------------------ internals

    def _unwrap(self, org: str, raw: bytes, fields: dict[str, str | None]) -> UnwrappedKey:
        header = _parse_exact_header(validate_org(org), raw)
        fields["message_id"] = header.message_id_hex
        recording_id = fields["recording"] = check_org(header, org)
        kek_id, encrypted_dek = kek_data_key(header)
        fields["kek"] = kek_id
        raw = header.raw
        # Read before the KEK: an eviction from here on (a revocation seen by another
        # request) keeps this data key out of the cache.
        generation = self.data_keys.generation(org)
        cached = self.data_keys.get((org, raw))
        if cached is not None:
            fields["cache"] = "dek-hit"
            return replace(cached, cache="dek-hit")
        kek, how, kek_expires = self._kek_entry(org, kek_id)
        fields["cache"] = how
        if kek.source == "lkm":  # Genesys Cloud's key pairs never wrap kmsbridge recordings
            raise IntegrityError("the recording names a KEK that does not wrap recordings")
        dek = unwrap_dek(kek.private, encrypted_dek)
        verify_header(header, dek)
        result = UnwrappedKey(org, kek_id, recording_id, header.message_id_hex, dek, how)
        # A data key is as old as KMS's last agreement to unwrap its KEK, not as its own
        # derivation: it expires with the KEK's cache entry (DESIGN.md "Revocation bound").
        self.data_keys.put((org, raw), result, expires=kek_expires, generation=generation)
        return result

    def _kek(self, org: str, kek_id: str) -> tuple[LoadedKek, str]:
        kek, how, _ = self._kek_entry(org, kek_id)
        return kek, how

    def _kek_entry(self, org: str, kek_id: str) -> tuple[LoadedKek, str, float]:
        """The KEK, how it was found, and when KMS's agreement to it lapses."""
        try:
            return self.keks.get_or_load_entry(
                (org, kek_id), lambda: self._load_kek(*self.store.get_kek_with_org(org, kek_id))
            )
        except AccessRevoked:
            self._access_refused(org)
            raise

    def _load_kek(self, org: OrgRecord, record: KekRecord) -> LoadedKek:
        if record.state == "destroyed" or record.wrapped_private_key is None:
            raise NotFound(
                f"KEK {record.kek_id} was destroyed on purpose (crypto-shredded) "
                f"on {record.destroyed_at or 'an earlier date'}; its recordings cannot be played"
            )
        public = KekPublicKey.from_der(record.public_key)
        if public.kek_id != record.kek_id:
            raise IntegrityError("the KEK item's public key does not match its KEK id")
        pkcs8 = self.kms.unwrap(
            record.wrapped_private_key,
            org=record.org,
            kek_id=record.kek_id,
            kms_key_arns=record.kms_keys,
            registered=org.unwrap_kms_keys,  # a KEK item naming another key gets nothing
        )
        return LoadedKek(load_unwrapped_private_key(pkcs8, public), record.source)


def _parse_exact_header(org: str, raw: bytes) -> MessageHeader:
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise InvalidRequest("header must be the recording's first bytes, up to its body")
    if len(raw) > MAX_HEADER_BYTES:
        raise InvalidRequest(f"header is longer than {MAX_HEADER_BYTES} bytes")
    stream = io.BytesIO(raw)
    header = parse_header(stream.read)
    if stream.tell() != len(raw):
        raise InvalidRequest("header has bytes after the header authentication tag")
    return header


def _audit(
    op: str, fields: dict[str, str | None], outcome: str, started: float, request_id: str | None
) -> None:
    audit(
        op=op,
        outcome=outcome,
        duration_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        **{"org": None, **fields},
    )
