"""Certificates of imported keys: loading, key-pair match, chains, validity.

Chain checks use explicit signature checks (``verify_directly_issued_by``) and the RFC 5280
issuer constraints (CA flag, keyCertSign, path length), not
``cryptography.x509.verification``: that verifier enforces the Web PKI profile and a
validation time for every certificate, which refuses what legacy recording certificates
are (expired, SHA-1 signed, no EKU or SAN). The path must end at a root the operator's
bundle holds (``--ca``): that is the trust the operator vouches for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.clock import iso, utcnow
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import MIN_IMPORTED_RSA_BITS


def load_certificate(data: bytes) -> x509.Certificate:
    """One X.509 certificate, PEM or DER (what ``openssl x509 -outform DER`` writes)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidRequest("the certificate is not an X.509 certificate (PEM or DER)") from None


def load_ca_bundle(data: bytes) -> list[x509.Certificate]:
    """CA certificates: any number in PEM, or one in DER."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InvalidRequest("the CA bundle is not X.509 certificates (PEM or DER)") from None


def is_encrypted_pem(pem: bytes) -> bool:
    """PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a traditional PEM with ``Proc-Type: 4,ENCRYPTED``."""
    return b"ENCRYPTED" in pem


def load_private_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM: PKCS#1, PKCS#8, or encrypted with ``password``."""
    encrypted = is_encrypted_pem(pem)
    if encrypted and not password:
        raise InvalidRequest(
            "the private key is encrypted: give its password (--password-env NAME or the prompt)"
        )
    try:
        key = serialization.load_pem_private_key(pem, password if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise InvalidRequest("the private key does not decrypt: wrong password") from None
        raise InvalidRequest("the private key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidRequest("the private key is not an RSA key")
    return key


def check_key_pair(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    """RSA of at least 2048 bits, and the private half of the certificate's public key."""
    if key.key_size < MIN_IMPORTED_RSA_BITS:
        raise InvalidRequest(
            f"RSA keys must have at least {MIN_IMPORTED_RSA_BITS} bits; this one has {key.key_size}"
        )
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        raise InvalidRequest("the private key does not match the certificate's public key")


def check_leaf_usage(certificate: x509.Certificate) -> None:
    """The KEK certificate must allow key transport: keyEncipherment, when it limits usage."""
    usage = _key_usage(certificate)
    if usage is not None and not usage.key_encipherment:
        raise InvalidRequest(
            "the certificate's key usage does not allow keyEncipherment, so its key may not "
            "wrap recording keys"
        )


def verify_chain(
    certificate: x509.Certificate, bundle: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """The path from ``certificate`` to a self-signed root of ``bundle``, as RFC 5280 6.1
    checks it (but for dates): every signature, every issuer a CA (basicConstraints
    CA=true) allowed to sign certificates (keyCertSign, when key usage is present), within
    its path length. A self-signed ``certificate`` passes only if the bundle holds it."""
    path = [certificate]
    current = certificate
    while not _self_issued(current):
        issuer = next((c for c in bundle if c.subject == current.issuer and c not in path), None)
        if issuer is None:
            raise IntegrityError(
                f"the CA bundle has no certificate for {current.issuer.rfc4514_string()!r}, "
                f"the issuer of {current.subject.rfc4514_string()!r}"
            )
        _check_signature(current, issuer)
        _check_ca(issuer, below=len(path) - 1)
        path.append(issuer)
        current = issuer
    _check_signature(current, current)  # the root signs itself
    if current not in bundle:
        raise IntegrityError(
            f"the path ends at {current.subject.rfc4514_string()!r}, which is not in the CA "
            "bundle: a self-signed certificate is trusted only if the bundle holds it"
        )
    return path


def _self_issued(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject


def _check_signature(subject: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise IntegrityError(
            f"the signature on {subject.subject.rfc4514_string()!r} by "
            f"{issuer.subject.rfc4514_string()!r} does not verify"
        ) from None


def _check_ca(issuer: x509.Certificate, *, below: int) -> None:
    """``issuer`` signed a certificate with ``below`` CA certificates between it and the leaf."""
    name = issuer.subject.rfc4514_string()
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise IntegrityError(f"{name!r} is not a CA certificate (basicConstraints CA=true)")
    usage = _key_usage(issuer)
    if usage is not None and not usage.key_cert_sign:
        raise IntegrityError(f"{name!r} is a CA whose key usage does not allow keyCertSign")
    if constraints.path_length is not None and below > constraints.path_length:
        raise IntegrityError(
            f"{name!r} allows {constraints.path_length} CA certificate(s) below it, "
            f"the path has {below}"
        )


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def validity(certificate: x509.Certificate, now: datetime) -> str:
    if now < certificate.not_valid_before_utc:
        return "not-yet-valid"
    if now > certificate.not_valid_after_utc:
        return "expired"
    return "valid"


def check_for_encryption(certificate: x509.Certificate, now: datetime | None = None) -> None:
    """Refuse a certificate outside its validity period for any new encryption."""
    state = validity(certificate, now or utcnow())
    if state == "not-yet-valid":
        raise InvalidRequest(
            f"the certificate is not valid before {iso(certificate.not_valid_before_utc)}; "
            "it is refused for new encryption until then"
        )
    if state == "expired":
        raise InvalidRequest(
            f"the certificate expired on {iso(certificate.not_valid_after_utc)}; "
            "it still decrypts old recordings but encrypts nothing new"
        )
