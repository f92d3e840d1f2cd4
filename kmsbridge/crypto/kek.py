"""Key-encryption keys: RSA key pairs whose public half wraps each recording's data key.

Generation, DER encodings, the KEK id fingerprint, the fast authenticated load of an
unwrapped private key, and RSA-OAEP wrapping of data keys. No AWS here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import (
    DATA_KEY_BYTES,
    DEFAULT_KEK_BITS,
    KEK_KEY_SIZES,
    MIN_IMPORTED_RSA_BITS,
    RSA_PUBLIC_EXPONENT,
    kek_id_of,
    oaep_padding,
)

_OAEP = oaep_padding()  # immutable; built once rather than per data key


@dataclass(frozen=True)
class KekPublicKey:
    """A KEK's public half: all an encryptor needs. ``kek_id`` is its fingerprint."""

    kek_id: str
    spki_der: bytes = field(repr=False)
    key: rsa.RSAPublicKey = field(repr=False, compare=False)

    @classmethod
    def from_der(cls, spki_der: bytes, min_bits: int = MIN_IMPORTED_RSA_BITS) -> KekPublicKey:
        try:
            key = serialization.load_der_public_key(spki_der)
        except ValueError as exc:
            raise IntegrityError("the stored public key is not valid DER") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidRequest("a KEK public key must be RSA")
        if key.key_size < min_bits:
            raise InvalidRequest(f"RSA keys must have at least {min_bits} bits")
        return cls(kek_id=kek_id_of(spki_der), spki_der=spki_der, key=key)

    @classmethod
    def from_key(cls, key: rsa.RSAPublicKey) -> KekPublicKey:
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(kek_id=kek_id_of(der), spki_der=der, key=key)

    def wrap_dek(self, dek: bytes) -> bytes:
        """RSA-OAEP-SHA256 encrypt a recording's data key."""
        return self.key.encrypt(dek, _OAEP)


def generate_kek(bits: int = DEFAULT_KEK_BITS) -> tuple[rsa.RSAPrivateKey, KekPublicKey]:
    """A fresh RSA KEK pair (3072 bits, or 4096)."""
    if bits not in KEK_KEY_SIZES:
        raise InvalidRequest(f"KEK size must be one of {KEK_KEY_SIZES} bits")
    private = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits)
    return private, KekPublicKey.from_key(private.public_key())


def private_key_pkcs8(private: rsa.RSAPrivateKey) -> bytes:
    """The PKCS#8 DER that is wrapped under KMS. The caller must not keep it longer than needed."""
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_unwrapped_private_key(pkcs8_der: bytes, expected: KekPublicKey) -> rsa.RSAPrivateKey:
    """Load a KEK private key that KMS just unwrapped, and prove it is the stored KEK's.

    OpenSSL's full RSA key check costs ~150 ms for 3072 bits. The blob is already
    authenticated by KMS and the ESDK, so the check is skipped; instead the key must have
    the stored public key's modulus and exponent, and its primes must multiply to that
    modulus, which costs microseconds and rules out a key that is not the KEK's.
    """
    try:
        key = serialization.load_der_private_key(
            pkcs8_der, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        raise IntegrityError("the unwrapped KEK is not a PKCS#8 private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise IntegrityError("the unwrapped KEK is not an RSA private key")
    numbers = key.private_numbers()
    if (
        numbers.public_numbers != expected.key.public_numbers()
        or numbers.p * numbers.q != numbers.public_numbers.n
    ):
        raise IntegrityError("the unwrapped KEK does not match the stored public key")
    return key


def unwrap_dek(private: rsa.RSAPrivateKey, encrypted_dek: bytes) -> bytes:
    """RSA-OAEP-SHA256 decrypt a recording's data key; any failure is one integrity error."""
    try:
        dek = private.decrypt(encrypted_dek, _OAEP)
    except ValueError:
        raise IntegrityError("the recording's data key does not decrypt under its KEK") from None
    if len(dek) != DATA_KEY_BYTES:
        raise IntegrityError("the recording's data key has the wrong length")
    return dek
