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

Verifying (``verify_kek_certificate``): the path from the certificate up to a CA the caller
pinned (a certificate, or a SHA-256 fingerprint of one), every signature, every CA flag, the
dates of every certificate in the path, the key usage, the KEK id and the org. Two profiles:
a chain ending at a platform CA must name the org (subject O) and carry the KEK id as its
subject key identifier with keyEncipherment as its only key usage; a chain ending at a
customer CA pinned for that org (bring your own key) is bound to the org by that pin, since
customer certificates name whatever their CA chose. Signatures are verified once per
(certificates, pinned CAs, org, KEK id) per process (``VerificationCache``); dates are
checked on every call, so a cached certificate still expires on time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_modules import rfc5280, rfc5480

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import kek_id_of

# Everything the platform CA signs: ECDSA over P-384 with SHA-384 (KMS ECC_NIST_P384,
# ECDSA_SHA_384). The signer gets the TBSCertificate DER and returns a DER ECDSA-Sig-Value.
Signer = Callable[[bytes], bytes]
SIGNATURE_HASH = hashes.SHA384
CA_CURVE = ec.SECP384R1
KEK_COMMON_NAME = "kmsbridge KEK"
# Longer chains than leaf, intermediates, root are not something kmsbridge issues or imports.
MAX_PATH_LENGTH = 6
PLATFORM = "platform"
CUSTOMER = "customer"


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
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
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
    ca_key = _ca_public_key(_spki(ca))
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _base_builder(
            subject, ca.subject, serialization.load_der_public_key(spki_der), not_before, not_after
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=True), critical=True)
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


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    return x509.KeyUsage(**{n: allowed.get(n, False) for n in _KEY_USAGES})


def _ca_public_key(public_key_der: bytes) -> ec.EllipticCurvePublicKey:
    try:
        public = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidRequest("the CA public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, CA_CURVE):
        raise InvalidRequest("the platform CA key must be ECDSA on P-384 (KMS ECC_NIST_P384)")
    return public


def _ecdsa_with_sha384() -> rfc5280.AlgorithmIdentifier:
    algorithm = rfc5280.AlgorithmIdentifier()
    algorithm["algorithm"] = rfc5480.ecdsa_with_SHA384  # parameters absent: RFC 5758, 3.2
    return algorithm


def _signed(
    builder: x509.CertificateBuilder, issuer_key: ec.EllipticCurvePublicKey, sign: Signer
) -> x509.Certificate:
    scratch = builder.sign(ec.generate_private_key(CA_CURVE()), SIGNATURE_HASH())
    tbs, _ = decoder.decode(scratch.tbs_certificate_bytes, asn1Spec=rfc5280.TBSCertificate())
    tbs["signature"] = _ecdsa_with_sha384()
    tbs_der = encoder.encode(tbs)
    signature = sign(tbs_der)
    certificate = rfc5280.Certificate()
    certificate["tbsCertificate"] = tbs
    certificate["signatureAlgorithm"] = _ecdsa_with_sha384()
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


def _spki(certificate: x509.Certificate) -> bytes:
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


# ---------------------------------------------------------------- trust


@dataclass(frozen=True)
class TrustAnchors:
    """The CAs an encryptor pins itself: never read from where the key comes from.

    ``platform``: platform CA certificates; ``platform_fingerprints``: SHA-256 fingerprints
    of platform CA certificates that are presented with the chain (the bundle or the key
    table) and accepted only when they match; ``customer``: per org, the customer CAs
    under which that org's imported (BYOK) keys are accepted.
    """

    platform: tuple[x509.Certificate, ...] = ()
    platform_fingerprints: tuple[str, ...] = ()
    customer: Mapping[str, tuple[x509.Certificate, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.platform or self.platform_fingerprints or self.customer):
            raise InvalidRequest(
                "no CA is pinned: give the platform CA (--ca FILE or KMSBRIDGE_CA_FILE, "
                "or --ca-fingerprint)"
            )
        for ca in (*self.platform, *(c for cs in self.customer.values() for c in cs)):
            _check_is_ca(ca)

    def anchors_for(self, org: str, presented: Sequence[x509.Certificate]) -> dict[str, str]:
        """Pinned CA fingerprints usable for ``org``, each with its profile."""
        pinned = {fingerprint(c): PLATFORM for c in self.platform}
        wanted = set(self.platform_fingerprints)
        pinned.update({fingerprint(c): PLATFORM for c in presented if fingerprint(c) in wanted})
        pinned.update({fingerprint(c): CUSTOMER for c in self.customer.get(org, ())})
        return pinned

    def certificates_for(self, org: str) -> tuple[x509.Certificate, ...]:
        return (*self.platform, *self.customer.get(org, ()))


@dataclass(frozen=True)
class VerifiedKek:
    """A KEK public key whose certificate checked out, and the window it may encrypt in."""

    org: str
    kek_id: str
    spki_der: bytes = field(repr=False)
    not_before: datetime
    not_after: datetime
    profile: str  # PLATFORM or CUSTOMER
    anchor: str  # fingerprint of the pinned CA the path ends at


class VerificationCache:
    """Verified paths per process, bounded; keyed by every certificate's and CA's fingerprint."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], VerifiedKek] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> VerifiedKek | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], verified: VerifiedKek) -> None:
        with self._lock:
            self._entries[key] = verified
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


PROCESS_CACHE = VerificationCache()


def verify_kek_certificate(
    certificates: Sequence[x509.Certificate],
    *,
    org: str,
    trust: TrustAnchors,
    now: datetime,
    kek_id: str | None = None,
    cache: VerificationCache | None = PROCESS_CACHE,
) -> VerifiedKek:
    """Check a KEK certificate (first) and its chain (the rest) for encrypting to ``org``.

    ``kek_id``, when given, is the KEK the caller expects (a key-table item's). Refusals:
    IntegrityError for anything untrusted, tampered, of another org or KEK, or misused;
    InvalidRequest for a certificate outside its dates (the caller needs a fresh one).
    """
    if not certificates:
        raise IntegrityError("there is no KEK certificate to verify")
    anchors = trust.anchors_for(org, certificates)
    key = (org, kek_id or "", *sorted(anchors), *(fingerprint(c) for c in certificates))
    verified = cache.get(key) if cache is not None else None
    if verified is None:
        verified = _verify(certificates, org, kek_id, anchors, trust)
        if cache is not None:
            cache.put(key, verified)
    check_dates(verified, now)
    return verified


def check_dates(verified: VerifiedKek, now: datetime) -> None:
    """Every certificate of the path must be valid at ``now`` (checked on each use)."""
    if now < verified.not_before:
        raise InvalidRequest(
            f"the KEK certificate of org {verified.org!r} (or its chain) is not valid before "
            f"{verified.not_before:%Y-%m-%dT%H:%M:%SZ}; it encrypts nothing until then"
        )
    if now >= verified.not_after:
        raise InvalidRequest(
            f"the KEK certificate of org {verified.org!r} (or its chain) expired on "
            f"{verified.not_after:%Y-%m-%dT%H:%M:%SZ}: rotate the KEK or get a new bundle "
            f"(kmsbridge keys public {verified.org})"
        )


def _verify(
    certificates: Sequence[x509.Certificate],
    org: str,
    kek_id: str | None,
    anchors: Mapping[str, str],
    trust: TrustAnchors,
) -> VerifiedKek:
    leaf = certificates[0]
    spki = _spki(leaf)
    actual = kek_id_of(spki)
    if kek_id is not None and actual != kek_id:
        raise IntegrityError(f"the certificate of KEK {kek_id[:12]}… certifies another public key")
    path, anchor = _path_to_anchor(leaf, certificates[1:], anchors, trust.certificates_for(org))
    profile = anchors[fingerprint(anchor)]
    _check_leaf(leaf, org, actual, profile)
    everything = (*path, anchor)
    return VerifiedKek(
        org=org,
        kek_id=actual,
        spki_der=spki,
        not_before=max(c.not_valid_before_utc for c in everything),
        not_after=min(c.not_valid_after_utc for c in everything),
        profile=profile,
        anchor=fingerprint(anchor),
    )


def _path_to_anchor(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    anchors: Mapping[str, str],
    pinned: Sequence[x509.Certificate],
) -> tuple[list[x509.Certificate], x509.Certificate]:
    """The path from ``leaf`` to a pinned CA: every signature and CA flag checked."""
    candidates = [*pinned, *untrusted]
    path = [leaf]
    while len(path) < MAX_PATH_LENGTH:
        current = path[-1]
        issuers = [c for c in candidates if c.subject == current.issuer and c not in path]
        for issuer in sorted(issuers, key=lambda c: fingerprint(c) not in anchors):
            if not _signed_by(current, issuer):
                continue
            _check_is_ca(issuer)
            if fingerprint(issuer) in anchors:
                return path, issuer
            path.append(issuer)
            break
        else:
            break
    raise IntegrityError(
        f"the KEK certificate {leaf.subject.rfc4514_string()!r} does not chain up to a pinned CA"
    )


def _signed_by(subject: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_is_ca(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        is_ca = certificate.version == x509.Version.v1  # v1 predates the extension
    else:
        is_ca = constraints.ca
    if not is_ca:
        raise IntegrityError(f"{certificate.subject.rfc4514_string()!r} is not a CA certificate")


def _check_leaf(leaf: x509.Certificate, org: str, kek_id: str, profile: str) -> None:
    extensions = leaf.extensions
    constraints = _extension(extensions, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise IntegrityError("a CA certificate is not a KEK certificate")
    usage = _extension(extensions, x509.KeyUsage)
    if profile == CUSTOMER:
        if usage is not None and not usage.key_encipherment:
            raise IntegrityError("the KEK certificate does not allow keyEncipherment")
        return
    if usage is None or usage != _key_usage(key_encipherment=True):
        raise IntegrityError("the KEK certificate's key usage is not keyEncipherment only")
    ski = _extension(extensions, x509.SubjectKeyIdentifier)
    if ski is None or ski.digest != bytes.fromhex(kek_id):
        raise IntegrityError("the KEK certificate's subject key identifier is not its KEK id")
    names = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if names != [org]:
        raise IntegrityError(f"the KEK certificate is for org {names!r}, not {org!r}")


def _extension(extensions: x509.Extensions, kind: type[x509.ExtensionType]) -> Any:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
