"""Public-key bundles from the key table, for encryptors that cannot reach AWS."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.certificates import fingerprint, pem_chain
from kmsbridge.crypto.trust import TrustAnchors, verify_kek_certificate
from kmsbridge.formats import validate_org
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.certification import certificate_chain


@dataclass(frozen=True)
class Bundle:
    """The active KEK's certificate and chain (PEM), and what they say."""

    org: str
    kek_id: str
    not_after: str
    anchor: str  # SHA-256 fingerprint of the CA the chain ends at
    pem: bytes


def bundle_for(store: KeyStore, org: str, *, now: datetime | None = None) -> Bundle:
    """The org's active KEK as a bundle, checked against the chain's own root first.

    This proves the bundle is whole and current (signatures, dates, org, KEK id), not that
    its CA is the right one: the encryptor decides that with its own pin.
    """
    _, kek = store.active_kek(validate_org(org))
    ders = certificate_chain(store, kek)
    chain = [x509.load_der_x509_certificate(d) for d in ders]
    root = chain[-1]
    self_trust = (
        TrustAnchors(platform=(root,))
        if kek.source == "generated"
        else TrustAnchors(customer={org: (root,)})
    )
    verified = verify_kek_certificate(
        ders, org=org, kek_id=kek.kek_id, trust=self_trust, now=now or utcnow(), cache=None
    )
    return Bundle(org, kek.kek_id, iso(verified.not_after), fingerprint(root), pem_chain(chain))
