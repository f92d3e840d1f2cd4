"""The life of an org's KEKs: create, and the public key that encryptors may use.

Every new KEK is generated here, wrapped under the org's KMS keys, and unwrapped once and
compared with its public key before it is stored: a blob that cannot be unwrapped is
never written. Time is passed in (``now``), so cryptoperiods are tested on a fixed clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from kmsbridge.errors import InvalidRequest
from kmsbridge.formats import DEFAULT_KEK_BITS, validate_org
from kmsbridge.keks import KekPublicKey, generate_kek, load_unwrapped_private_key, private_key_pkcs8
from kmsbridge.kms import KekWrapper, validate_key_arns
from kmsbridge.store import DEFAULT_CRYPTOPERIOD_DAYS, KekRecord, KeyStore, OrgRecord

MIN_CRYPTOPERIOD_DAYS = 1
# NIST SP 800-57 Part 1, 5.3.6: one to two years for a public key-transport key.
MAX_CRYPTOPERIOD_DAYS = 730


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def validate_cryptoperiod(days: int) -> int:
    if not MIN_CRYPTOPERIOD_DAYS <= days <= MAX_CRYPTOPERIOD_DAYS:
        raise InvalidRequest(
            f"cryptoperiod must be {MIN_CRYPTOPERIOD_DAYS} to {MAX_CRYPTOPERIOD_DAYS} days"
        )
    return days


def make_kek(
    kms: KekWrapper,
    *,
    org: str,
    kms_key_arns: Sequence[str],
    now: datetime,
    state: str = "active",
    bits: int = DEFAULT_KEK_BITS,
) -> KekRecord:
    """Generate a KEK, wrap it under the org's KMS keys, and prove the blob unwraps."""
    private, public = generate_kek(bits)
    pkcs8 = private_key_pkcs8(private)
    blob = kms.wrap(pkcs8, org=org, kek_id=public.kek_id, kms_key_arns=kms_key_arns)
    del private, pkcs8
    verify_wrapped(kms, blob, org=org, public=public, kms_key_arns=kms_key_arns)
    stamp = iso(now)
    return KekRecord(
        org=org,
        kek_id=public.kek_id,
        public_key=public.spki_der,
        wrapped_private_key=blob,
        kms_keys=tuple(kms_key_arns),
        state=state,
        created_at=stamp,
        activated_at=stamp if state == "active" else None,
    )


def verify_wrapped(
    kms: KekWrapper,
    blob: bytes,
    *,
    org: str,
    public: KekPublicKey,
    kms_key_arns: Sequence[str],
) -> None:
    """Unwrap a blob through KMS and check it holds the private half of ``public``."""
    pkcs8 = kms.unwrap(blob, org=org, kek_id=public.kek_id, kms_key_arns=kms_key_arns)
    load_unwrapped_private_key(pkcs8, public)


def create_org(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    kms_key_arns: Sequence[str],
    *,
    cryptoperiod_days: int = DEFAULT_CRYPTOPERIOD_DAYS,
    bits: int = DEFAULT_KEK_BITS,
    now: datetime | None = None,
) -> tuple[OrgRecord, KekRecord]:
    """Record an org's KMS keys and cryptoperiod, with its first active KEK."""
    validate_org(org)
    arns = validate_key_arns(kms_key_arns)
    validate_cryptoperiod(cryptoperiod_days)
    now = now or utcnow()
    kek = make_kek(kms, org=org, kms_key_arns=arns, now=now, bits=bits)
    record = OrgRecord(org, tuple(arns), cryptoperiod_days, kek.kek_id, iso(now))
    store.create_org(record, kek)
    return record, kek


def not_after(org: OrgRecord, kek: KekRecord) -> datetime:
    """When the active KEK's cryptoperiod for new encryptions ends."""
    started = parse_iso(kek.activated_at or kek.created_at)
    return started + timedelta(days=org.cryptoperiod_days)


def public_key_for_encryption(
    store: KeyStore, org: str, *, now: datetime | None = None
) -> KekPublicKey:
    """The org's active KEK public key, refused once it is past its cryptoperiod."""
    org_record, kek = store.active_kek(validate_org(org))
    check_not_expired(org, not_after(org_record, kek), now or utcnow())
    return KekPublicKey.from_der(kek.public_key)


def check_not_expired(org: str, until: datetime, now: datetime) -> None:
    if now >= until:
        raise InvalidRequest(
            f"the active KEK of org {org!r} passed its cryptoperiod on {iso(until)}; "
            f"rotate it first: kmsbridge kek rotate {org}"
        )
