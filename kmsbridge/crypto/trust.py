"""Whether a KEK certificate may be used to encrypt: verified against CAs the encryptor pins.

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

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from kmsbridge.crypto.certificates import fingerprint, key_usage, load_pem_chain, spki_of
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import kek_id_of

# Longer chains than leaf, intermediates, root are not something kmsbridge issues or imports.
MAX_PATH_LENGTH = 6
PLATFORM = "platform"
CUSTOMER = "customer"


@dataclass(frozen=True)
class TrustAnchors:
    """The CAs an encryptor pins itself: never read from where the key comes from.

    ``platform``: platform CA certificates; ``platform_fingerprints``: SHA-256 fingerprints
    of platform CA certificates that are presented with the chain (the bundle or the key
    table) and accepted only when they match; ``customer``: per org, the customer CAs
    under which that org's imported (BYOK) keys are accepted, or the customer's (often
    self-signed) certificate itself, pinned directly.
    """

    platform: tuple[x509.Certificate, ...] = ()
    platform_fingerprints: tuple[str, ...] = ()
    customer: Mapping[str, tuple[x509.Certificate, ...]] = field(default_factory=dict)

    _pins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.platform or self.platform_fingerprints or self.customer):
            raise InvalidRequest(
                "no CA is pinned: give the platform CA (--ca FILE or KMSBRIDGE_CA_FILE, "
                "or --ca-fingerprint)"
            )
        for ca in self.platform:
            _check_is_ca(ca)

    def pins_for(self, org: str) -> str:
        """Everything pinned for ``org``, as one string: part of the cache key (memoized)."""
        if org not in self._pins:
            pinned = [fingerprint(c) for c in (*self.platform, *self.customer.get(org, ()))]
            self._pins[org] = ",".join(sorted(pinned)) + "|" + ",".join(self.platform_fingerprints)
        return self._pins[org]

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
    """Verified paths per process, bounded; keyed by the chain's bytes, the pins, org, KEK."""

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
    chain: bytes | Sequence[bytes],
    *,
    org: str,
    trust: TrustAnchors,
    now: datetime,
    kek_id: str | None = None,
    cache: VerificationCache | None = PROCESS_CACHE,
    check_validity: bool = True,
) -> VerifiedKek:
    """Check a KEK certificate and its chain for encrypting to ``org``.

    ``chain``: PEM (a bundle: the KEK certificate first), or DER certificates (the key
    table's), KEK certificate first. ``kek_id``, when given, is the KEK the caller expects.
    Refusals: IntegrityError for anything untrusted, tampered, of another org or KEK, or
    misused; InvalidRequest for a certificate outside its dates (a fresh one is needed).
    The cache key is the bytes given, not parsed objects, so a hit parses nothing. A caller
    that passes ``check_validity=False`` calls ``check_dates`` itself before using the key.
    """
    encoded = [chain] if isinstance(chain, bytes) else list(chain)
    digest = hashlib.sha256(b"".join(len(e).to_bytes(4, "big") + e for e in encoded)).hexdigest()
    key = (org, kek_id or "", trust.pins_for(org), digest)
    verified = cache.get(key) if cache is not None else None
    if verified is None:
        certificates = _parse(chain)
        anchors = trust.anchors_for(org, certificates)
        verified = _verify(certificates, org, kek_id, anchors, trust)
        if cache is not None:
            cache.put(key, verified)
    if check_validity:
        check_dates(verified, now)
    return verified


def _parse(chain: bytes | Sequence[bytes]) -> list[x509.Certificate]:
    if isinstance(chain, bytes):
        certificates = load_pem_chain(chain)
    else:
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError:
            raise IntegrityError("a stored KEK certificate is not DER X.509") from None
    if not certificates:
        raise IntegrityError("there is no KEK certificate to verify")
    return certificates


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
    spki = spki_of(leaf)
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
    if anchors.get(fingerprint(leaf)) == CUSTOMER:
        return [], leaf  # the customer's certificate itself is pinned
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
    if usage is None or usage != key_usage(key_encipherment=True):
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


def load_trust(
    org: str,
    *,
    ca_file: str | None = None,
    ca_fingerprint: str | None = None,
    customer_ca_file: str | None = None,
    customer_ca_dir: str | None = None,
) -> TrustAnchors:
    """The encryptor's pins for ``org``, from its own configuration: the platform CA (a PEM
    file of one or more CA certificates, or the SHA-256 fingerprint of one), and for an org
    with imported keys its customer CA (a file, or ``ORG.pem`` in a directory)."""
    platform = tuple(_read_cas(ca_file)) if ca_file else ()
    pins: tuple[str, ...] = ()
    if ca_fingerprint:
        pin = ca_fingerprint.replace(":", "").strip().lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise InvalidRequest(
                "a CA fingerprint is the SHA-256 of its certificate, 64 hex digits"
            )
        pins = (pin,)
    if customer_ca_file is None and customer_ca_dir:
        candidate = os.path.join(customer_ca_dir, f"{org}.pem")
        customer_ca_file = candidate if os.path.isfile(candidate) else None
    customer = {org: tuple(_read_cas(customer_ca_file))} if customer_ca_file else {}
    return TrustAnchors(platform=platform, platform_fingerprints=pins, customer=customer)


def _read_cas(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InvalidRequest(f"cannot read the pinned CA file {path}: {exc.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidRequest(f"the pinned CA file {path} is not PEM certificates") from None
    return certificates
