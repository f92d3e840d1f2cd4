"""The inventory of an org's keys, for operators and auditors: no key material, ever.

Per KEK: state, source, when it was created, activated, retired and destroyed (and by
whom), its age, and for the active KEK the days left in its cryptoperiod. Per KMS key
(the org's and every KEK's): its KeyState right now, and whether it is usable (Enabled).
A key that cannot even be described (denied, deleted) is reported as not usable, with the
error code, rather than failing the whole report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from kmsbridge.clock import iso, parse_iso, utcnow
from kmsbridge.errors import InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.formats import validate_kek_id, validate_org
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.policy import not_after
from kmsbridge.keys.records import KekRecord
from kmsbridge.keys.table import KeyStore

USABLE_KEY_STATE = "Enabled"


@dataclass(frozen=True)
class KmsKeyStatus:
    arn: str
    state: str
    usable: bool


@dataclass(frozen=True)
class KekSummary:
    kek_id: str
    state: str
    source: str
    created_at: str
    activated_at: str | None
    retired_at: str | None
    destroyed_at: str | None
    destroyed_by: str | None
    age_days: int
    not_after: str | None
    days_left: int | None
    kms_keys: tuple[str, ...]
    kms_key_usable: bool


@dataclass(frozen=True)
class Inventory:
    org: str
    cryptoperiod_days: int
    kms_keys: tuple[str, ...]
    active_kek: str
    keks: tuple[KekSummary, ...]
    key_status: tuple[KmsKeyStatus, ...]
    at: str

    def to_dict(self) -> dict[str, Any]:
        """As JSON: each KEK's id under ``kek``, the name every kmsbridge answer uses."""
        data = asdict(self)
        data["keks"] = [{"kek": k.pop("kek_id"), **k} for k in data["keks"]]
        return data


def inventory(
    store: KeyStore, kms: KekWrapper, org: str, *, now: datetime | None = None
) -> Inventory:
    """Every KEK of the org and every KMS key they name, with KMS's view of each key now."""
    now = now or utcnow()
    org_record = store.get_org(validate_org(org))
    records = store.list_keks(org)
    arns = dict.fromkeys([*org_record.kms_keys, *(a for r in records for a in r.kms_keys)])
    status = {arn: key_status(kms, arn) for arn in arns}
    until = {
        r.kek_id: not_after(org_record, r) for r in records if r.kek_id == org_record.active_kek
    }
    keks = tuple(_summary(r, until.get(r.kek_id), status, now) for r in _ordered(records))
    return Inventory(
        org=org,
        cryptoperiod_days=org_record.cryptoperiod_days,
        kms_keys=org_record.kms_keys,
        active_kek=org_record.active_kek,
        keks=keks,
        key_status=tuple(status.values()),
        at=iso(now),
    )


def key_status(kms: KekWrapper, arn: str) -> KmsKeyStatus:
    try:
        state = kms.key_state(arn)
    except KmsBridgeError as exc:
        return KmsKeyStatus(arn, exc.code, False)
    return KmsKeyStatus(arn, state, state == USABLE_KEY_STATE)


def _summary(
    record: KekRecord,
    until: datetime | None,
    status: dict[str, KmsKeyStatus],
    now: datetime,
) -> KekSummary:
    live = record.state != "destroyed" and record.wrapped_private_key is not None
    return KekSummary(
        kek_id=record.kek_id,
        state=record.state,
        source=record.source,
        created_at=record.created_at,
        activated_at=record.activated_at,
        retired_at=record.retired_at,
        destroyed_at=record.destroyed_at,
        destroyed_by=record.destroyed_by,
        age_days=_days(now - parse_iso(record.created_at)),
        not_after=iso(until) if until else None,
        days_left=_days(until - now) if until else None,
        kms_keys=record.kms_keys,
        kms_key_usable=live and any(status[a].usable for a in record.kms_keys),
    )


def _days(span: timedelta) -> int:
    """Whole days, rounded down (a KEK 10 hours past its period has -1 days left)."""
    return int(span.total_seconds() // 86400)


def _ordered(records: list[KekRecord]) -> list[KekRecord]:
    """Newest first: the active KEK, then retired ones, as an operator reads them."""
    # The order of `access check` (lifecycle.windows.kek_periods, newest first): ties in the
    # second-granular timestamps break on the KEK id, the same way in both commands.
    return sorted(records, key=lambda r: (r.activated_at or r.created_at, r.kek_id), reverse=True)


MIN_KEK_PREFIX = 8
KEK_ID_LENGTH = 64


def resolve_kek_id(store: KeyStore, org: str, given: str) -> str:
    """A full KEK id from itself or from a prefix that names exactly one KEK of the org.

    A prefix is at least ``MIN_KEK_PREFIX`` hex characters, as people copy them from
    ``kek list``; an ambiguous or unknown one is refused, naming what it matched.
    """
    text = given.strip().lower()
    if len(text) == KEK_ID_LENGTH:
        return validate_kek_id(text)
    if not MIN_KEK_PREFIX <= len(text) < KEK_ID_LENGTH or text.strip("0123456789abcdef"):
        raise InvalidRequest(
            f"{given!r} is not a KEK id: give the 64 hex characters or a prefix of at least "
            f"{MIN_KEK_PREFIX}"
        )
    keks = store.list_keks(validate_org(org))
    matches = sorted(r.kek_id for r in keks if r.kek_id.startswith(text))
    if not matches:
        raise NotFound(f"no KEK of org {org!r} starts with {text}")
    if len(matches) > 1:
        raise InvalidRequest(
            f"the prefix {text} matches {len(matches)} KEKs of org {org!r} "
            f"({', '.join(matches)}); give more characters"
        )
    return matches[0]
