"""The life of an org's KEKs: create, rotate, retire, destroy, and what encryptors may use.

Every new KEK is generated here, wrapped under the org's KMS keys, and unwrapped once and
compared with its public key before it is stored: a blob that cannot be unwrapped is
never written. Time is passed in (``now``), so cryptoperiods are tested on a fixed clock.

States: ``active`` (the one KEK new recordings use; at most one per org) -> ``retired``
(decrypt only) -> ``destroyed`` (crypto-shredded: the wrapped private key is removed, a
tombstone with the public key, when and who stays). Rotation is one transaction
(``KeyStore.activate``): the new KEK's ``activated_at`` and the old one's ``retired_at``
are the same instant, so the period each KEK was active is exact.
Rewrapping lives in ``rewrap.py``, backups in ``backup.py``, the inventory in ``inventory.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from kmsbridge.audit import audit
from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.kek import (
    KekPublicKey,
    generate_kek,
    private_key_pkcs8,
)
from kmsbridge.crypto.trust import TrustAnchors
from kmsbridge.errors import ConflictError, InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.formats import DEFAULT_KEK_BITS, KEK_KEY_SIZES, validate_kek_id, validate_org
from kmsbridge.keys.kms import KekWrapper, validate_key_arns, verify_wrapped
from kmsbridge.keys.policy import (
    check_certificate_started,
    check_not_expired,
    not_after,
    validate_cryptoperiod,
)
from kmsbridge.keys.records import DEFAULT_CRYPTOPERIOD_DAYS, KekRecord, OrgRecord
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.certification import KekCertifier, verified_public_key


def make_kek(
    kms: KekWrapper,
    *,
    org: str,
    kms_key_arns: Sequence[str],
    now: datetime,
    state: str = "active",
    bits: int = DEFAULT_KEK_BITS,
    certifier: KekCertifier | None = None,
    cryptoperiod_days: int = DEFAULT_CRYPTOPERIOD_DAYS,
) -> KekRecord:
    """Generate a KEK, wrap it under the org's KMS keys, and prove the blob unwraps.

    With a ``certifier`` (the platform CA) it comes with its certificate; without one it
    encrypts nothing until ``kmsbridge ca issue`` certifies it.
    ``kms_key_arns`` are the org's registered keys: the ones ``org add`` is registering, or
    the org settings item's (rotation never takes keys from anywhere else).
    """
    private, public = generate_kek(bits)
    pkcs8 = private_key_pkcs8(private)
    arns = {"kms_key_arns": kms_key_arns, "registered": kms_key_arns}
    blob = kms.wrap(pkcs8, org=org, kek_id=public.kek_id, **arns)
    del private, pkcs8
    verify_wrapped(kms, blob, org=org, public=public, **arns)
    stamp = iso(now)
    record = KekRecord(
        org=org,
        kek_id=public.kek_id,
        public_key=public.spki_der,
        wrapped_private_key=blob,
        kms_keys=tuple(kms_key_arns),
        state=state,
        created_at=stamp,
        activated_at=stamp if state == "active" else None,
    )
    if certifier is None:
        return record
    return certifier.certify(record, cryptoperiod_days=cryptoperiod_days)


def create_org(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    kms_key_arns: Sequence[str],
    *,
    cryptoperiod_days: int = DEFAULT_CRYPTOPERIOD_DAYS,
    bits: int = DEFAULT_KEK_BITS,
    now: datetime | None = None,
    certifier: KekCertifier | None = None,
    added_by: str | None = None,
) -> tuple[OrgRecord, KekRecord]:
    """Register an org's KMS keys and cryptoperiod (onboarding), with its first active KEK.

    From here on the org's KMS keys change only through ``rewrap.set_org_kms_keys``.
    """
    validate_org(org)
    arns = validate_key_arns(kms_key_arns)
    validate_cryptoperiod(cryptoperiod_days)
    now = now or utcnow()
    kek = make_kek(
        kms,
        org=org,
        kms_key_arns=arns,
        now=now,
        bits=bits,
        certifier=certifier,
        cryptoperiod_days=cryptoperiod_days,
    )
    record = OrgRecord(
        org,
        tuple(arns),
        cryptoperiod_days,
        kek.kek_id,
        iso(now),
        kms_keys_set_by=added_by,
        kms_keys_set_at=iso(now) if added_by else None,
    )
    store.create_org(record, kek)
    return record, kek


def public_key_for_encryption(
    store: KeyStore,
    org: str,
    *,
    trust: TrustAnchors,
    now: datetime | None = None,
    rotate_if_expired: bool = False,
    kms: KekWrapper | None = None,
    certifier: KekCertifier | None = None,
) -> KekPublicKey:
    """The org's active KEK public key, refused once it is past its cryptoperiod, and
    refused (INTEGRITY) unless its certificate checks out against the CAs in ``trust``.

    With ``rotate_if_expired`` (and ``kms``, and the ``certifier`` that certifies the new
    KEK), an expired KEK is rotated first instead; if another writer rotated at the same
    moment, its new KEK is used.
    """
    now = now or utcnow()
    org_record, kek = store.active_kek(validate_org(org))
    until = not_after(org_record, kek)
    if rotate_if_expired and now >= until:
        if kms is None or certifier is None:
            raise InvalidRequest(
                "rotating an expired KEK needs KMS access (a KekWrapper) and the platform CA "
                "(a KekCertifier) to certify its successor"
            )
        try:
            kek = _rotate(store, kms, org_record, kek, now, certifier)[1]
        except ConflictError:
            org_record, kek = store.active_kek(org)
    return verified_public_key(store, kek, trust=trust, now=now, org=org_record)


# ---------------------------------------------------------------- rotation


@dataclass(frozen=True)
class Rotation:
    """One rotation: ``retired_kek`` stopped and ``active_kek`` started at ``at``."""

    org: str
    retired_kek: str
    active_kek: str
    at: str


def rotate(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    *,
    now: datetime | None = None,
    certifier: KekCertifier | None = None,
) -> Rotation:
    """Make a new active KEK under the org's KMS keys and retire the previous one, atomically.

    Of two concurrent rotations exactly one wins; the other raises ``ConflictError`` and
    stores nothing. The new KEK has the size of the one it replaces (at least 3072 bits).
    """
    org_record, active = store.active_kek(validate_org(org))
    return _rotate(store, kms, org_record, active, now or utcnow(), certifier)[0]


def rotate_if_due(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    *,
    now: datetime,
    lead: timedelta = timedelta(0),
    certifier: KekCertifier | None = None,
) -> Rotation | None:
    """Rotate when the active KEK's cryptoperiod ends before ``now + lead``; else None.

    The lead is capped at half the cryptoperiod, so a short period is not rotated on
    every run.
    """
    org_record, active = store.active_kek(validate_org(org))
    lead = min(lead, timedelta(days=org_record.cryptoperiod_days) / 2)
    if now + lead < not_after(org_record, active):
        return None
    return _rotate(store, kms, org_record, active, now, certifier)[0]


def _rotate(
    store: KeyStore,
    kms: KekWrapper,
    org_record: OrgRecord,
    active: KekRecord,
    now: datetime,
    certifier: KekCertifier | None,
) -> tuple[Rotation, KekRecord]:
    started = time.perf_counter()
    org = org_record.org
    try:
        new = make_kek(
            kms,
            org=org,
            kms_key_arns=org_record.kms_keys,
            now=now,
            bits=_bits(active),
            certifier=certifier,
            cryptoperiod_days=org_record.cryptoperiod_days,
        )
        store.activate(org_record, new, iso(now))
    except KmsBridgeError as exc:
        _audit("kek-rotate", org, active.kek_id, exc.code, started)
        raise
    _audit("kek-rotate", org, new.kek_id, "ok", started, retired_kek=active.kek_id)
    return Rotation(org, active.kek_id, new.kek_id, iso(now)), new


def _bits(kek: KekRecord) -> int:
    size = KekPublicKey.from_der(kek.public_key).key.key_size
    return size if size in KEK_KEY_SIZES else DEFAULT_KEK_BITS


@dataclass(frozen=True)
class RotationReport:
    """One scheduled run: rotated, not yet due, not in the table, failed (org, code, message)."""

    rotated: tuple[Rotation, ...] = ()
    current: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    failed: tuple[tuple[str, str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rotated": [vars(r) for r in self.rotated],
            "current": list(self.current),
            "missing": list(self.missing),
            "failed": [{"org": o, "code": c, "message": m} for o, c, m in self.failed],
        }


def rotate_due_orgs(
    store: KeyStore,
    kms: KekWrapper,
    *,
    now: datetime,
    lead: timedelta = timedelta(0),
    orgs: Sequence[str] | None = None,
    certifier: KekCertifier | None = None,
) -> RotationReport:
    """Rotate each org whose active KEK's period ends before ``now + lead``.

    ``orgs`` names the orgs to look at (a role limited to some orgs cannot scan the
    table); by default every org in the table. One org's failure does not stop the
    others. An org another writer rotated at the same moment counts as current: it has a
    fresh KEK either way. A named org not in the table (not added yet) is ``missing``.
    """
    rotated, current, missing, failed = [], [], [], []
    for org in orgs if orgs is not None else [o.org for o in store.list_orgs()]:
        try:
            done = rotate_if_due(store, kms, org, now=now, lead=lead, certifier=certifier)
        except ConflictError:
            done = None
        except NotFound:
            missing.append(org)
            continue
        except KmsBridgeError as exc:
            failed.append((org, exc.code, exc.message))
            continue
        if done is None:
            current.append(org)
        else:
            rotated.append(done)
    return RotationReport(tuple(rotated), tuple(current), tuple(missing), tuple(failed))


def activate(store: KeyStore, org: str, kek_id: str, *, now: datetime | None = None) -> Rotation:
    """Make a KEK that was never active (an imported key pair) the org's active KEK.

    Refused until its certificate's notBefore and after its notAfter; the previous active
    KEK retires in the same transaction. A KEK that was active once is not brought back:
    its period is over (revocation by period depends on it); rotate for a new one.
    """
    now = now or utcnow()
    record = store.get_kek(validate_org(org), validate_kek_id(kek_id))
    org_record = store.get_org(org)
    if org_record.active_kek == kek_id:
        raise InvalidRequest(f"KEK {kek_id} is already the active KEK of org {org!r}")
    if record.state != "retired" or record.activated_at is not None:
        raise InvalidRequest(
            f"only a KEK that was never active (an imported key pair) can be activated; "
            f"KEK {kek_id} is {record.state}"
            + (" and was active before" if record.activated_at else "")
            + f": kmsbridge kek rotate {org} makes a new one"
        )
    try:
        check_certificate_started(org, record, now)
        check_not_expired(org, not_after(org_record, replace(record, activated_at=iso(now))), now)
    except InvalidRequest as exc:
        raise InvalidRequest(f"KEK {kek_id} cannot be activated now: {exc.message}") from None
    started = time.perf_counter()
    store.activate_existing(org_record, record, iso(now))
    _audit("kek-activate", org, kek_id, "ok", started, retired_kek=org_record.active_kek)
    return Rotation(org, org_record.active_kek, kek_id, iso(now))


# ---------------------------------------------------------------- retire and destroy


def retire(store: KeyStore, org: str, kek_id: str, *, now: datetime | None = None) -> KekRecord:
    """Make a KEK decrypt-only. The org's active KEK is retired only by rotating.

    The KEK is read before the org, so a KEK that a concurrent rotation just activated is
    seen as the org's active one; the update is conditional on the KEK's version.
    """
    record = store.get_kek(validate_org(org), validate_kek_id(kek_id))
    if store.get_org(org).active_kek == kek_id:
        raise InvalidRequest(
            f"KEK {kek_id} is the active KEK of org {org!r}; rotating retires it: "
            f"kmsbridge kek rotate {org}"
        )
    if record.state == "destroyed":
        raise InvalidRequest(f"KEK {kek_id} was already destroyed")
    if record.state == "retired":
        return record
    started = time.perf_counter()
    updated = store.update_kek(record, state="retired", retired_at=iso(now or utcnow()))
    _audit("kek-retire", org, kek_id, "ok", started)
    return updated


def destroy(
    store: KeyStore,
    org: str,
    kek_id: str,
    *,
    confirm: str | None,
    destroyed_by: str,
    now: datetime | None = None,
) -> KekRecord:
    """Crypto-shred a retired KEK: remove its wrapped private key, keep a tombstone.

    ``confirm`` must be the KEK id itself, typed back. Recordings under the KEK can never
    be played again; the decryptor answers NOT_FOUND saying it was destroyed on purpose.
    Destroying a destroyed KEK changes nothing.
    """
    validate_org(org)
    validate_kek_id(kek_id)
    if confirm != kek_id:
        raise InvalidRequest(
            "destroying a KEK needs its id typed back as confirmation "
            f"(--confirm {kek_id}); nothing was changed"
        )
    record = check_destroyable(store, org, kek_id)
    if record.state == "destroyed":
        return record
    started = time.perf_counter()
    tombstone = store.update_kek(
        record,
        state="destroyed",
        wrapped_private_key=None,
        destroyed_at=iso(now or utcnow()),
        destroyed_by=destroyed_by,
    )
    _audit("kek-destroy", org, kek_id, "ok", started, destroyed_by=destroyed_by)
    return tombstone


def check_destroyable(store: KeyStore, org: str, kek_id: str) -> KekRecord:
    """The KEK, if ``destroy`` may shred it (or already did); else why not."""
    record = store.get_kek(validate_org(org), validate_kek_id(kek_id))
    if record.state == "destroyed":
        return record
    if record.state != "retired" or store.get_org(org).active_kek == kek_id:
        raise InvalidRequest(
            f"only a retired KEK can be destroyed; KEK {kek_id} is {record.state} "
            f"(rotate, then retire it first)"
        )
    return record


def _audit(op: str, org: str, kek: str, outcome: str, started: float, **extra: Any) -> None:
    duration = (time.perf_counter() - started) * 1000
    audit(op=op, org=org, kek=kek, outcome=outcome, duration_ms=duration, **extra)
