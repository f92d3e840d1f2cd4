"""Backups of an org's key items: every KEK still wrapped, safe to keep offsite.

A backup is JSON: ``{"kmsbridge_backup": 1, "org", "exported_at", "items": [...],
"checksum": "sha256:<hex>"}``. ``items`` are the org's settings item and its KEK items as
DynamoDB attribute values, binaries in base64. The checksum is SHA-256 over the canonical
JSON of everything else (sorted keys, no spaces, ASCII), so any change to the file is
found before anything is written. It catches damage, not forgery: anyone can recompute it.

Forgery is caught by KMS before anything is written: every KEK item the import would write
is unwrapped through KMS under the org's registered keys, its context must name the org and
the KEK id, and the key must be the private half of the item's public key; a KEK item
without a wrapped key must be a destroyed tombstone, never the active KEK. One item that
fails refuses the whole file (INTEGRITY). The registered keys are the key table's when it
holds the org; restoring an org the table does not hold is onboarding it again, so the
operator names its KMS keys (``kek import FILE --kms-key ARN``) and the backup's org item
must name no other.

KEK items carry their certificates (and an imported key's chain), and the backup carries
the platform CA's certificate (``platform_ca``, base64 DER) when there is one. Import
checks every certificate before anything is written: it must certify its item's public
key, and a generated KEK's must be the platform CA's (the table's own CA when it has one,
else the backup's), for the item's org and KEK id; a chain must hold together. Dates are
not checked: retired KEKs' certificates have ended on purpose.

Import restores missing items only. An item already in the table that is identical is
left alone (so importing twice is harmless); one that differs stops the import before
anything is written, unless ``missing_only``: then differing items are kept as the table
has them and only the missing ones are written (each still checked against its public
key). A restored KEK that the backup calls active while the table's org names another
is restored retired: an org never has two active KEKs. KEK items are written before the
org item that names them. ``dry_run`` reports what would be written and writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509

from kmsbridge.audit import audit
from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.trust import TrustAnchors, verify_kek_certificate
from kmsbridge.errors import (
    ConflictError,
    IntegrityError,
    InvalidRequest,
    KmsBridgeError,
    NotFound,
    WrongOrg,
)
from kmsbridge.files import atomic_output
from kmsbridge.formats import validate_org
from kmsbridge.keys.ca import find_ca
from kmsbridge.keys.kms import KekWrapper, validate_key_arns, verify_wrapped
from kmsbridge.keys.records import KekRecord, OrgRecord
from kmsbridge.keys.table import (
    ORG_SORT_KEY,
    KeyStore,
    kek_from_item,
    kek_to_item,
    org_from_item,
    org_to_item,
)

BACKUP_VERSION = 1
# An org read while it rotates can pair an old settings item with new KEK items.
_CONSISTENT_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class ImportResult:
    org: str
    created: tuple[str, ...]  # sort keys written ("#org" is the settings item)
    identical: tuple[str, ...]  # already present, unchanged
    kept: tuple[str, ...] = ()  # present but different, left as they are (missing_only)
    dry_run: bool = False  # nothing was written: ``created`` is what would be


def export_org(store: KeyStore, org: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The org's settings and KEK items (wrapped keys as they are) with a checksum."""
    started = time.perf_counter()
    org_record, keks = _consistent_read(store, validate_org(org))
    items = [org_to_item(org_record), *(kek_to_item(k) for k in keks)]
    body: dict[str, Any] = {
        "kmsbridge_backup": BACKUP_VERSION,
        "org": org,
        "exported_at": iso(now or utcnow()),
        "items": [_to_json(i) for i in items],
    }
    ca = find_ca(store)
    if ca is not None:
        body["platform_ca"] = base64.b64encode(ca.certificate_der).decode("ascii")
    duration = (time.perf_counter() - started) * 1000
    audit(op="kek-export", org=org, outcome="ok", duration_ms=duration, keks=len(keks))
    return body | {"checksum": checksum(body)}


def write_backup(
    backup: dict[str, Any], path: str | os.PathLike[str], *, replace: bool = True
) -> None:
    """Write the backup whole; with ``replace=False`` an existing file is refused."""
    with atomic_output(path, replace=replace) as out:
        out.write(json.dumps(backup, indent=1, sort_keys=True).encode("ascii") + b"\n")


def read_backup(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A backup file, refused unless its version and checksum are right."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest(f"{path} is not a kmsbridge backup (not JSON)") from None
    return check_backup(data, str(path))


def check_backup(data: Any, source: str = "the backup") -> dict[str, Any]:
    """Refuse anything but a version-1 backup whose checksum matches its content."""
    if not isinstance(data, dict) or data.get("kmsbridge_backup") != BACKUP_VERSION:
        raise InvalidRequest(f"{source} is not a kmsbridge backup (version {BACKUP_VERSION})")
    body = {k: v for k, v in data.items() if k != "checksum"}
    if data.get("checksum") != checksum(body):
        raise InvalidRequest(f"{source} fails its checksum: it is damaged; nothing was imported")
    return data


def checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def import_backup(
    store: KeyStore,
    kms: KekWrapper,
    backup: dict[str, Any],
    *,
    kms_key_arns: Sequence[str] | None = None,
    missing_only: bool = False,
    dry_run: bool = False,
) -> ImportResult:
    """Restore the missing items of a checked backup, each KEK item proven through KMS
    first; refuse the whole file if any KEK item is not genuine, or if any present item
    differs (unless ``missing_only``, which keeps them). ``dry_run`` writes nothing."""
    started = time.perf_counter()
    org = validate_org(check_backup(backup).get("org"))
    try:
        missing, identical, kept = _plan_import(store, kms, backup, org, kms_key_arns, missing_only)
    except KmsBridgeError as exc:
        audit(op="kek-import", org=org, outcome=exc.code, duration_ms=_since(started))
        raise
    if dry_run:
        return ImportResult(org, tuple(_sort_key(r) for r in missing), tuple(identical), kept, True)
    created = []
    for record in missing:  # KEKs first, the org item (which names one) last
        if _put_new(store, record):
            created.append(_sort_key(record))
        else:
            identical.append(_sort_key(record))
    audit(op="kek-import", org=org, outcome="ok", duration_ms=_since(started), created=len(created))
    return ImportResult(org, tuple(created), tuple(identical), kept)


def _plan_import(
    store: KeyStore,
    kms: KekWrapper,
    backup: dict[str, Any],
    org: str,
    kms_key_arns: Sequence[str] | None,
    missing_only: bool,
) -> tuple[list[Record], list[str], tuple[str, ...]]:
    """What an import would write, every KEK item of it proven; nothing written here."""
    org_record, keks = _records(backup, org)
    _check_certificates(store, backup, keks)
    registered = _registered_keys(store, org_record, kms_key_arns)
    missing, identical, different = _compare(store, org_record, keks)
    if different and not missing_only:
        names = ", ".join(_label(k) for k in different)
        raise InvalidRequest(
            f"the key table already holds different items for org {org!r} ({names}); "
            "refusing to overwrite them; nothing was imported (--missing-only writes only "
            "the missing items)"
        )
    missing = _one_active(store, org_record, missing)
    for record in missing:
        if isinstance(record, KekRecord):
            _prove(kms, record, registered)
    return missing, identical, tuple(_sort_key(r) for r in different)


def _one_active(store: KeyStore, org_record: OrgRecord, missing: list[Record]) -> list[Record]:
    """Missing KEKs that the backup calls active, restored retired if the table's org item
    (kept) names another active KEK."""
    if any(isinstance(r, OrgRecord) for r in missing):
        return missing  # the backup's org item is restored too and names its active KEK
    active = _existing(store, org_record)
    names = active.active_kek if isinstance(active, OrgRecord) else None
    return [
        replace(r, state="retired")
        if isinstance(r, KekRecord) and r.state == "active" and r.kek_id != names
        else r
        for r in missing
    ]


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _registered_keys(
    store: KeyStore, org_record: OrgRecord, operator_arns: Sequence[str] | None
) -> tuple[str, ...]:
    """The KMS keys KEK items may be unwrapped under: the table's registered keys for the
    org, or for an org the table does not hold, the ones the operator names."""
    try:
        current = store.get_org(org_record.org)
    except NotFound:
        if not operator_arns:
            raise InvalidRequest(
                f"the key table does not hold org {org_record.org!r}: restoring it registers "
                "its KMS keys, so name them (kek import FILE --kms-key ARN); nothing was imported"
            ) from None
        given = validate_key_arns(operator_arns)
        if not set(org_record.unwrap_kms_keys) <= set(given):
            raise InvalidRequest(
                "the backup's org item names KMS keys other than the ones given with "
                "--kms-key; nothing was imported"
            ) from None
        return tuple(given)
    if operator_arns and set(validate_key_arns(operator_arns)) != set(current.kms_keys):
        raise InvalidRequest(
            f"org {org_record.org!r} is registered with other KMS keys than --kms-key names "
            "(change them with kmsbridge org set-kms-keys); nothing was imported"
        )
    return current.unwrap_kms_keys


def _prove(kms: KekWrapper, kek: KekRecord, registered: Sequence[str]) -> None:
    """KMS unwraps the item's blob, for this org and KEK id, to its public key's private half."""
    label = f"KEK {kek.kek_id[:12]}… of the backup"
    if kek.wrapped_private_key is None:
        if kek.state != "destroyed":
            raise IntegrityError(
                f"{label} has no wrapped key but is {kek.state}; nothing was imported"
            )
        return
    public = KekPublicKey.from_der(kek.public_key)
    try:
        verify_wrapped(
            kms,
            kek.wrapped_private_key,
            org=kek.org,
            public=public,
            kms_key_arns=kek.kms_keys,
            registered=registered,
        )
    except (IntegrityError, WrongOrg) as exc:
        raise IntegrityError(
            f"{label} is not a wrapped key of org {kek.org!r} for its public key "
            f"({exc.code}); the whole file is refused, nothing was imported"
        ) from None


# ---------------------------------------------------------------- internals


def _consistent_read(store: KeyStore, org: str) -> tuple[OrgRecord, list[KekRecord]]:
    for _ in range(_CONSISTENT_READ_ATTEMPTS):
        before = store.get_org(org)
        keks = store.list_keks(org)
        if store.get_org(org) == before:
            return before, keks
    raise ConflictError(f"org {org!r} kept changing during the export; run it again")


def _records(backup: dict[str, Any], org: str) -> tuple[OrgRecord, list[KekRecord]]:
    """Decode and check every item: one org item, KEK ids that match their public keys."""
    try:
        items = [_from_json(i) for i in backup["items"]]
        orgs = [org_from_item(i) for i in items if i["kek"]["S"] == ORG_SORT_KEY]
        keks = [kek_from_item(i) for i in items if i["kek"]["S"] != ORG_SORT_KEY]
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise InvalidRequest(f"the backup's items are malformed ({type(exc).__name__})") from None
    if len(orgs) != 1 or orgs[0].org != org or any(k.org != org for k in keks):
        raise InvalidRequest(f"the backup must hold exactly org {org!r}'s items")
    for kek in keks:
        try:
            matches = KekPublicKey.from_der(kek.public_key).kek_id == kek.kek_id
        except KmsBridgeError:
            matches = False
        if not matches:
            raise InvalidRequest(f"KEK {kek.kek_id} in the backup does not match its key")
    active = next((k for k in keks if k.kek_id == orgs[0].active_kek), None)
    if active is None:
        raise InvalidRequest("the backup's org item names an active KEK it does not hold")
    if active.state != "active" or active.wrapped_private_key is None:
        raise IntegrityError("the backup's active KEK is not a live active KEK")
    return orgs[0], keks


def _check_certificates(store: KeyStore, backup: dict[str, Any], keks: list[KekRecord]) -> None:
    """Every certificate certifies its item's key, for its org, under the right CA."""
    platform = _platform_ca(store, backup)
    for kek in keks:
        if kek.certificate is None:
            continue
        try:
            chain = [
                x509.load_der_x509_certificate(d) for d in (kek.certificate, *kek.certificate_chain)
            ]
        except ValueError:
            raise IntegrityError(
                f"KEK {kek.kek_id[:12]}…'s certificate in the backup is not X.509"
            ) from None
        if kek.source == "generated":
            if platform is None:
                raise IntegrityError(
                    "the backup holds platform certificates but neither it nor the key table "
                    "has the platform CA"
                )
            trust = TrustAnchors(platform=(platform,))
        else:
            trust = TrustAnchors(customer={kek.org: (chain[-1],)})
        ders = [kek.certificate, *kek.certificate_chain]
        try:
            verify_kek_certificate(
                ders, org=kek.org, kek_id=kek.kek_id, trust=trust, now=utcnow(),
                cache=None, check_validity=False,
            )  # fmt: skip
        except IntegrityError as exc:
            raise IntegrityError(
                f"KEK {kek.kek_id[:12]}…'s certificate in the backup does not check out "
                f"({exc.message}); nothing was imported"
            ) from None


def _platform_ca(store: KeyStore, backup: dict[str, Any]) -> x509.Certificate | None:
    """The table's own platform CA when it has one, else the one the backup carries."""
    ca = find_ca(store)
    if ca is not None:
        return ca.certificate
    carried = backup.get("platform_ca")
    if carried is None:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(carried, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise IntegrityError("the backup's platform CA certificate is not X.509") from None


Record = OrgRecord | KekRecord


def _compare(
    store: KeyStore, org_record: OrgRecord, keks: list[KekRecord]
) -> tuple[list[Record], list[str], list[Record]]:
    missing: list[Record] = []
    identical: list[str] = []
    different: list[Record] = []
    records: list[Record] = [*keks, org_record]
    for record in records:
        existing = _existing(store, record)
        if existing is None:
            missing.append(record)
        elif existing == record:
            identical.append(_sort_key(record))
        else:
            different.append(record)
    return missing, identical, different


def _existing(store: KeyStore, record: Record) -> Record | None:
    try:
        if isinstance(record, OrgRecord):
            return store.get_org(record.org)
        return store.get_kek(record.org, record.kek_id)
    except NotFound:
        return None


def _put_new(store: KeyStore, record: Record) -> bool:
    """Write a missing item; False if an identical one appeared meanwhile (a twin import)."""
    try:
        if isinstance(record, OrgRecord):
            store.put_new_org(record)
        else:
            store.put_new_kek(record)
    except ConflictError:
        if _existing(store, record) == record:
            return False
        raise
    return True


def _sort_key(record: Record) -> str:
    return ORG_SORT_KEY if isinstance(record, OrgRecord) else record.kek_id


def _label(record: Record) -> str:
    return "the org settings" if isinstance(record, OrgRecord) else f"KEK {record.kek_id}"


def _to_json(value: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (or attribute value map) as JSON: binaries in base64."""
    return {name: _attr_to_json(attr) for name, attr in value.items()}


def _attr_to_json(attr: dict[str, Any]) -> dict[str, Any]:
    ((kind, value),) = attr.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if kind == "L":
        return {"L": [_attr_to_json(v) for v in value]}
    if kind == "M":
        return {"M": _to_json(value)}
    return {kind: value}


def _from_json(value: dict[str, Any]) -> dict[str, Any]:
    return {name: _attr_from_json(attr) for name, attr in value.items()}


def _attr_from_json(attr: dict[str, Any]) -> dict[str, Any]:
    ((kind, value),) = attr.items()
    if kind == "B":
        return {"B": base64.b64decode(value, validate=True)}
    if kind == "L":
        return {"L": [_attr_from_json(v) for v in value]}
    if kind == "M":
        return {"M": _from_json(value)}
    return {kind: value}
