"""KEK certificates in the life of a KEK: issued with it, checked before it encrypts.

Every generated KEK gets a certificate from the platform CA (``keys/ca.py``) when it is
made (org add, rotation; rewrap changes only the wrapped blob, so the certificate stays),
valid for its period of active use: from activation to the end of its cryptoperiod, or to
its retirement if that came first. ``issue_missing`` certifies KEKs made before the CA
existed (``kmsbridge ca issue``): only items without a certificate, each update
conditional on the item's version, so a rerun continues where a stopped run left off.

Encryption from the key table (``verified_public_key``) checks the certificate against the
CAs the caller pinned, never against the table's own CA item: someone who can write the
table can change a public key, a certificate and the CA item, but not the caller's pins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509

from kmsbridge.clock import parse_iso
from kmsbridge.crypto.certificates import pem_chain
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.trust import (
    PROCESS_CACHE,
    TrustAnchors,
    VerificationCache,
    check_dates,
    verify_kek_certificate,
)
from kmsbridge.errors import ConflictError, IntegrityError, KmsBridgeError
from kmsbridge.keys.ca import CaRecord, KmsSigner, certify_kek, find_ca
from kmsbridge.keys.policy import check_certificate_started, check_not_expired, not_after
from kmsbridge.keys.records import KekRecord, KekState, OrgRecord
from kmsbridge.keys.table import KeyStore


@dataclass(frozen=True)
class KekCertifier:
    """The platform CA and its KMS signer: certifies KEKs as they are made."""

    ca: CaRecord
    signer: KmsSigner

    def certify(self, kek: KekRecord, *, cryptoperiod_days: int) -> KekRecord:
        """``kek`` with a certificate for its org, valid for its active use."""
        start, end = active_period(kek, cryptoperiod_days)
        der = certify_kek(
            self.ca,
            self.signer,
            org=kek.org,
            spki_der=kek.public_key,
            not_before=start,
            not_after=end,
        )
        return replace(kek, certificate=der)


def active_period(kek: KekRecord, cryptoperiod_days: int) -> tuple[datetime, datetime]:
    """From activation (or creation) to the end of the cryptoperiod or retirement."""
    start = parse_iso(kek.activated_at or kek.created_at)
    end = start + timedelta(days=cryptoperiod_days)
    if kek.retired_at is not None:
        end = min(end, parse_iso(kek.retired_at))
    return start, max(end, start + timedelta(seconds=1))


# ---------------------------------------------------------------- checking


def certificate_chain(store: KeyStore, kek: KekRecord) -> list[bytes]:
    """The KEK's certificate and its issuers (DER): the platform CA's from the table for a
    generated KEK, the customer's stored chain for an imported one."""
    if kek.certificate is None:
        raise IntegrityError(
            f"KEK {kek.kek_id[:12]}… of org {kek.org!r} has no certificate, so it encrypts "
            "nothing (kmsbridge ca issue --all-orgs)"
        )
    if kek.source != "generated":
        return [kek.certificate, *kek.certificate_chain]
    ca = find_ca(store)
    return [kek.certificate] + ([ca.certificate_der] if ca is not None else [])


def verified_public_key(
    store: KeyStore,
    kek: KekRecord,
    *,
    trust: TrustAnchors,
    now: datetime,
    org: OrgRecord | None = None,
    cache: VerificationCache | None = PROCESS_CACHE,
) -> KekPublicKey:
    """The public key of a key-table KEK, only if its certificate checks out for its org.

    Trust first (INTEGRITY for anything the pins do not vouch for), then the cryptoperiod
    and the dates, so a forged certificate is never reported as merely expired.
    """
    verified = verify_kek_certificate(
        certificate_chain(store, kek),
        org=kek.org,
        kek_id=kek.kek_id,
        trust=trust,
        now=now,
        cache=cache,
        check_validity=False,
    )
    org_record = store.get_org(kek.org) if org is None else org
    check_not_expired(kek.org, not_after(org_record, kek), now)
    check_certificate_started(kek.org, kek, now)
    check_dates(verified, now)
    return KekPublicKey.from_der(kek.public_key)


def bundle_pem(store: KeyStore, kek: KekRecord) -> bytes:
    """The KEK's certificate and chain as PEM, the CA's certificate last (a bundle)."""
    chain = [x509.load_der_x509_certificate(der) for der in certificate_chain(store, kek)]
    return pem_chain(chain)


# ---------------------------------------------------------------- migration


@dataclass(frozen=True)
class IssueReport:
    """One ``ca issue`` run: certified, already certified or not certifiable, failed."""

    issued: tuple[tuple[str, str], ...] = ()
    skipped: int = 0
    failed: tuple[tuple[str, str, str], ...] = ()


def issue_missing(
    store: KeyStore,
    certifier: KekCertifier,
    orgs: Sequence[OrgRecord],
    *,
    progress: Callable[[str], None] | None = None,
) -> IssueReport:
    """Certify every generated, not destroyed KEK of ``orgs`` that has no certificate yet.

    Idempotent and resumable: certified KEKs are skipped, an item changed meanwhile is
    re-read once. One KEK's failure does not stop the others.
    """
    issued, failed, skipped = [], [], 0
    for org in orgs:
        for kek in store.list_keks(org.org):
            if (
                kek.certificate is not None
                or kek.source != "generated"
                or kek.state == KekState.DESTROYED
            ):
                skipped += 1
            else:
                try:
                    _certify_stored(store, certifier, org, kek)
                    issued.append((org.org, kek.kek_id))
                except KmsBridgeError as exc:
                    failed.append((org.org, kek.kek_id, f"{exc.code}: {exc.message}"))
            if progress is not None:
                progress(org.org)
    return IssueReport(tuple(issued), skipped, tuple(failed))


def _certify_stored(
    store: KeyStore, certifier: KekCertifier, org: OrgRecord, kek: KekRecord
) -> None:
    for attempt in range(2):  # an item changed meanwhile (a rotation retired it) is re-read
        if attempt:
            kek = store.get_kek(org.org, kek.kek_id)
            if kek.certificate is not None or kek.state == KekState.DESTROYED:
                return
        certified = certifier.certify(kek, cryptoperiod_days=org.cryptoperiod_days)
        try:
            store.update_kek(kek, certificate=certified.certificate)
            return
        except ConflictError:
            if attempt:
                raise


def count_keks(store: KeyStore, orgs: Sequence[OrgRecord]) -> int:
    return sum(len(store.list_keks(o.org)) for o in orgs)
