"""X.509 certificates for KEKs: build them for an external signer, verify them against pinned CAs.

No AWS here: the signer is a callable (``keys/ca.py`` passes one that calls ``kms:Sign``; the
tests pass a local EC key). DESIGN.md "KEK certificate" is the contract.

Building. cryptography cannot sign a certificate with a key it does not hold, so the
TBSCertificate is made by cryptography's ``CertificateBuilder`` (names, extensions, dates,
encodings all checked by it), signed once with a throwaway P-384 key, and only its
``tbs_certificate_bytes`` kept. The TBSCertificate names its own signature algorithm (RFC
5280, 4.1.2.3), which must equal the outer one and what the real signer does, so it is
decoded with pyasn1 and its ``signature`` field set to ecdsa-with-SHA384 (RFC 5758, 3.2:
parameters absent) explicitly, whatever the throwaway signer wrote, before the real signer
sees the bytes. The Certificate (TBS, algorithm, signature BIT STRING) is assembled with
pyasn1-modules' RFC 5280 schema and DER-encoded by pyasn1, never by concatenating bytes;
the result is loaded back and its signature checked with the issuer's key before it is
returned, so a wrong key or a bad signer never yields a certificate. pyasn1 over asn1crypto:
both are pure Python with the RFC 5280 schema, but pyasn1 (and pyasn1-modules) have
maintained releases while asn1crypto has had none since 2022.

The KEK id goes in the subject key identifier: the 32 bytes of SHA-256 over the KEK's
SubjectPublicKeyInfo DER, which is the KEK id itself (RFC 5280, 4.2.1.2 allows any method
that gives unique values; RFC 7093, 2 hashes the whole SPKI the same way), so
``openssl x509 -text`` shows it and no private extension is needed.
Verifying is ``crypto/trust.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import kek_id_of

# Everything the platform CA signs: ECDSA over P-384 with SHA-384 (KMS ECC_NIST_P384,
# ECDSA_SHA_384). The signer gets the TBSCertificate DER and returns a DER ECDSA-Sig-Value.
Signer = Callable[[bytes], bytes]
SIGNATURE_HASH = hashes.SHA384
CA_CURVE = ec.SECP384R1
KEK_COMMON_NAME = "kmsbridge KEK"


def fingerprint(certificate: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER (what ``openssl x509 -fingerprint`` shows)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


# ---------------------------------------------------------------- building


def build_ca_certificate(
    public_key_der: bytes,
    *,
    name: str,
    not_before: datetime,
    not_after: datetime,
    sign: Signer,
) -> x509.Certificate:
    """A self-signed CA certificate for an ECDSA P-384 key held elsewhere (KMS)."""
    public = _ca_public_key(public_key_der)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kmsbridge platform"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    builder = (
        _base_builder(subject, subject, public, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return _signed(builder, public, sign)


def build_kek_certificate(
    spki_der: bytes,
    *,
    org: str,
    ca: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
    sign: Signer,
) -> x509.Certificate:
    """The certificate of a KEK public key for ``org``, issued by ``ca`` through ``sign``."""
    if not not_before < not_after <= ca.not_valid_after_utc:
        raise InvalidRequest("a KEK certificate must start before it ends, within its CA's")
    kek_id = kek_id_of(spki_der)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, KEK_COMMON_NAME),
        ]
    )
    ca_key = _ca_public_key(spki_of(ca))
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _base_builder(
            subject, ca.subject, serialization.load_der_public_key(spki_der), not_before, not_after
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(bytes.fromhex(kek_id)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return _signed(builder, ca_key, sign)


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: object,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def key_usage(**allowed: bool) -> x509.KeyUsage:
    return x509.KeyUsage(**{n: allowed.get(n, False) for n in _KEY_USAGES})


def _ca_public_key(public_key_der: bytes) -> ec.EllipticCurvePublicKey:
    try:
        public = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidRequest("the CA public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, CA_CURVE):
        raise InvalidRequest("the platform CA key must be ECDSA on P-384 (KMS ECC_NIST_P384)")
    return public


def _signed(
    builder: x509.CertificateBuilder, issuer_key: ec.EllipticCurvePublicKey, sign: Signer
) -> x509.Certificate:
    # Imported here: pyasn1-modules' RFC 5280 schema takes ~0.1-0.3 s to import, which only
    # issuing pays; an encryptor that verifies certificates never loads it.
    from pyasn1.codec.der import decoder, encoder
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280, rfc5480

    def ecdsa_with_sha384() -> rfc5280.AlgorithmIdentifier:
        algorithm = rfc5280.AlgorithmIdentifier()
        algorithm["algorithm"] = rfc5480.ecdsa_with_SHA384  # parameters absent: RFC 5758, 3.2
        return algorithm

    scratch = builder.sign(ec.generate_private_key(CA_CURVE()), SIGNATURE_HASH())
    tbs, _ = decoder.decode(scratch.tbs_certificate_bytes, asn1Spec=rfc5280.TBSCertificate())
    tbs["signature"] = ecdsa_with_sha384()
    tbs_der = encoder.encode(tbs)
    signature = sign(tbs_der)
    certificate = rfc5280.Certificate()
    certificate["tbsCertificate"] = tbs
    certificate["signatureAlgorithm"] = ecdsa_with_sha384()
    certificate["signature"] = univ.BitString.fromOctetString(signature)
    issued = x509.load_der_x509_certificate(encoder.encode(certificate))
    try:
        issuer_key.verify(
            issued.signature, issued.tbs_certificate_bytes, ec.ECDSA(SIGNATURE_HASH())
        )
    except InvalidSignature:
        raise IntegrityError(
            "the CA signer returned a signature its public key does not verify"
        ) from None
    return issued


def spki_of(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ---------------------------------------------------------------- PEM chains


def pem_chain(certificates: Sequence[x509.Certificate]) -> bytes:
    """Certificates as concatenated PEM blocks (leaf first), as ``openssl`` reads them."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def load_pem_chain(data: bytes, what: str = "the bundle") -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise IntegrityError(f"{what} is not X.509 certificates in PEM") from None
    return certificates
