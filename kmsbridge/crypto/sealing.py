"""Data keys sealed to a caller's ephemeral public key with HPKE (RFC 9180, base mode).

The decryptor never has to return a bare data key: a playback service sends a fresh
public key with each request, the decryptor seals the data key to it, and only the
holder of the matching private key opens it. The suite is the KEM the caller chose
(``X25519``, or the hybrid ``MLKEM768_X25519`` for post-quantum protection), HKDF-SHA256
and AES-256-GCM; the output is cryptography's ``hpke.Suite.encrypt`` (encapsulated key,
then ciphertext and tag).

``info`` binds the sealed key to what it belongs to (DESIGN.md "The decryptor"):
``"kmsbridge unwrap v1|" + org + "|" + KEK id + "|" + message id in lowercase hex``, so a
sealed key replayed for another org, KEK or recording does not open.

A caller's key is checked at the door (``ResponseKey.parse``), before any KMS call: its
size, its encoding, and for X25519 (alone or in the hybrid) that it is not a point of small
order. cryptography loads such a point (the all-zero key, for one) without complaint and
only refuses the exchange ("Error computing shared key", RFC 7748 section 6.1: the shared
secret would be all zeros), so the check is a trial exchange with a throwaway key.

Raw public keys on the wire: X25519 is its 32 bytes (RFC 7748). cryptography's
``MLKEM768X25519PublicKey`` has no byte encoding of its own; kmsbridge uses the hybrid
KEM's serialization from the HPKE post-quantum draft: the 1184-byte ML-KEM-768
encapsulation key (FIPS 203) followed by the 32-byte X25519 key, 1216 bytes in all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from kmsbridge.errors import IntegrityError, InvalidRequest

X25519 = "X25519"
MLKEM768_X25519 = "MLKEM768_X25519"
KEMS = (X25519, MLKEM768_X25519)
X25519_PUBLIC_BYTES = 32
MLKEM768_PUBLIC_BYTES = 1184
PUBLIC_KEY_BYTES = {X25519: X25519_PUBLIC_BYTES, MLKEM768_X25519: MLKEM768_PUBLIC_BYTES + 32}
INFO_PREFIX = "kmsbridge unwrap v1|"
_AEAD_OVERHEAD = 16
_HPKE_KEMS = {X25519: hpke.KEM.X25519, MLKEM768_X25519: hpke.KEM.MLKEM768_X25519}


def sealed_length(kem: str, plaintext_bytes: int) -> int:
    """Bytes of a sealed value: the KEM's encapsulated key, the ciphertext, the GCM tag."""
    return _HPKE_KEMS[check_kem(kem)].enc_length() + plaintext_bytes + _AEAD_OVERHEAD


def check_kem(kem: object) -> str:
    if not isinstance(kem, str) or kem not in _HPKE_KEMS:
        raise InvalidRequest(f"response_key.kem must be one of {', '.join(KEMS)}")
    return kem


def seal_info(org: str, kek_id: str, message_id_hex: str) -> bytes:
    """The HPKE ``info`` of one released data key (UTF-8)."""
    return f"{INFO_PREFIX}{org}|{kek_id}|{message_id_hex}".encode()


_SUITES = {
    kem: hpke.Suite(hpke_kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    for kem, hpke_kem in _HPKE_KEMS.items()
}


def _suite(kem: str) -> hpke.Suite:
    return _SUITES[kem]  # immutable, built once


def load_public_key(kem: object, raw: bytes) -> Any:
    """The KEM public key of a caller's raw bytes; a wrong size or invalid key is refused."""
    kem = check_kem(kem)
    expected = PUBLIC_KEY_BYTES[kem]
    if len(raw) != expected:
        raise InvalidRequest(f"response_key.public_key must be {expected} bytes for {kem}")
    try:
        if kem == X25519:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_BYTES:]),
        )
    except ValueError:
        raise InvalidRequest(f"response_key.public_key is not a valid {kem} public key") from None


def check_public_key(kem: object, raw: bytes) -> Any:
    """``load_public_key``, and refuse an X25519 point of small order (no shared secret)."""
    public_key = load_public_key(kem, raw)
    x_raw = raw if kem == X25519 else raw[MLKEM768_PUBLIC_BYTES:]
    try:
        _probe_key().exchange(x25519.X25519PublicKey.from_public_bytes(x_raw))
    except ValueError:
        raise InvalidRequest(f"response_key.public_key is not a usable {kem} key") from None
    return public_key


@functools.cache
def _probe_key() -> x25519.X25519PrivateKey:
    """One throwaway key per process for the trial exchange; its results are discarded."""
    return x25519.X25519PrivateKey.generate()


@dataclass(frozen=True)
class ResponseKey:
    """A caller's KEM and raw public key, to which a released data key is sealed."""

    kem: str
    public_key: bytes = field(repr=False)

    @classmethod
    def parse(cls, kem: object, raw: bytes) -> ResponseKey:
        """A checked response key (size, encoding, small-order points): INVALID_REQUEST."""
        check_public_key(kem, raw)
        return cls(str(kem), raw)

    def seal(self, data_key: bytes, *, org: str, kek_id: str, message_id: str) -> bytes:
        return seal(
            data_key, self.kem, self.public_key, org=org, kek_id=kek_id, message_id=message_id
        )


def seal(
    data_key: bytes, kem: str, raw_public_key: bytes, *, org: str, kek_id: str, message_id: str
) -> bytes:
    """Seal a data key to the caller's public key, bound to its org, KEK and message."""
    public_key = load_public_key(kem, raw_public_key)
    try:
        return _suite(kem).encrypt(data_key, public_key, info=seal_info(org, kek_id, message_id))
    except ValueError:
        # e.g. an X25519 point of small order: the shared secret would be all zeros.
        raise InvalidRequest(f"response_key.public_key is not a usable {kem} key") from None


@dataclass(frozen=True)
class EphemeralKey:
    """A caller's one-use key pair: send ``public_bytes`` with a request, ``open`` the answer."""

    kem: str
    public_bytes: bytes
    _private: Any = field(repr=False, compare=False)

    @classmethod
    def generate(cls, kem: str = X25519) -> EphemeralKey:
        kem = check_kem(kem)
        x_private = x25519.X25519PrivateKey.generate()
        x_public = x_private.public_key().public_bytes_raw()
        if kem == X25519:
            return cls(kem, x_public, x_private)
        m_private = mlkem.MLKEM768PrivateKey.generate()
        raw = m_private.public_key().public_bytes_raw() + x_public
        return cls(kem, raw, hpke.MLKEM768X25519PrivateKey(m_private, x_private))

    def open(self, sealed: bytes, *, org: str, kek_id: str, message_id: str) -> bytes:
        """The data key sealed to this key for that org, KEK and message; else INTEGRITY."""
        try:
            return _suite(self.kem).decrypt(
                sealed, self._private, info=seal_info(org, kek_id, message_id)
            )
        except (InvalidTag, ValueError):
            raise IntegrityError(
                "the sealed data key does not open with this response key for this recording"
            ) from None
