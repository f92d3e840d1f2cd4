"""Bring your own key: import an RSA key pair and its X.509 certificate as a KEK.

Import (``import_key_pair``): a PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8; the
password comes from the caller, never a command line), a PEM certificate, optionally a CA
bundle (intermediates then root). Refused: RSA under 2048 bits, a key that is not the
certificate's or a certificate whose key usage excludes keyEncipherment (INVALID_REQUEST);
with a CA bundle, a path that does not end at a root the bundle holds (a self-signed leaf
included), a signature that does not verify, an issuer that is not a CA allowed to sign
certificates (keyCertSign) or exceeds its path length (INTEGRITY). The key is wrapped under
the org's KMS keys at once, the blob unwrapped once as proof, and stored as a KEK item with
``source`` "imported", the certificate's DER beside it, ``retired`` (decrypt-only) unless
activated. A certificate not yet valid may be imported but is refused for new encryption
(``check_for_encryption``); an expired one still decrypts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization

from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.kek import KekPublicKey, private_key_pkcs8
from kmsbridge.errors import InvalidRequest, NotFound
from kmsbridge.formats import validate_org
from kmsbridge.keys.kms import KekWrapper, verify_wrapped
from kmsbridge.keys.records import KekRecord
from kmsbridge.keys.table import KeyStore
from kmsbridge.legacy.certificates import (
    check_for_encryption,
    check_key_pair,
    check_leaf_usage,
    load_ca_bundle,
    load_certificate,
    load_private_key,
    validity,
    verify_chain,
)


@dataclass(frozen=True)
class ImportedKek:
    """What an import stored (no secrets)."""

    record: KekRecord
    subject: str
    not_before: str
    not_after: str
    validity: str  # "valid", "not-yet-valid" or "expired" at import time
    chain: tuple[str, ...]  # subjects from the certificate up to the root (if a CA was given)


def import_key_pair(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    *,
    certificate_pem: bytes,
    private_key_pem: bytes,
    password: bytes | None = None,
    ca_bundle_pem: bytes | None = None,
    activate: bool = False,
    now: datetime | None = None,
) -> ImportedKek:
    """Check, wrap under the org's KMS keys, prove the blob, and store an imported KEK."""
    validate_org(org)
    now = now or utcnow()
    certificate = load_certificate(certificate_pem)
    key = load_private_key(private_key_pem, password)
    check_key_pair(certificate, key)
    check_leaf_usage(certificate)
    chain = verify_chain(certificate, load_ca_bundle(ca_bundle_pem)) if ca_bundle_pem else []
    if activate:
        check_for_encryption(certificate, now)
    public = KekPublicKey.from_key(key.public_key())
    org_record = store.get_org(org)
    _check_not_imported(store, org, public.kek_id)
    arns = org_record.kms_keys
    pkcs8 = private_key_pkcs8(key)
    blob = kms.wrap(pkcs8, org=org, kek_id=public.kek_id, kms_key_arns=arns, registered=arns)
    del key, pkcs8
    verify_wrapped(kms, blob, org=org, public=public, kms_key_arns=arns, registered=arns)
    stamp = iso(now)
    record = KekRecord(
        org=org,
        kek_id=public.kek_id,
        public_key=public.spki_der,
        wrapped_private_key=blob,
        kms_keys=tuple(arns),
        state="active" if activate else "retired",
        created_at=stamp,
        source="imported",
        activated_at=stamp if activate else None,
        retired_at=None if activate else stamp,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
        certificate_chain=tuple(c.public_bytes(serialization.Encoding.DER) for c in chain[1:]),
    )
    if activate:
        store.activate(org_record, record, stamp)
    else:
        store.put_new_kek(record)
    return ImportedKek(
        record,
        certificate.subject.rfc4514_string(),
        iso(certificate.not_valid_before_utc),
        iso(certificate.not_valid_after_utc),
        validity(certificate, now),
        tuple(c.subject.rfc4514_string() for c in chain),
    )


def _check_not_imported(store: KeyStore, org: str, kek_id: str) -> None:
    try:
        store.get_kek(org, kek_id)
    except NotFound:
        return
    raise InvalidRequest(f"this key pair is already a KEK of org {org!r} ({kek_id})")
