"""Export recipients registered per org: the only places an org's recordings may go.

``kmsbridge export recipients add|list|remove ORG --cert C.pem | --pgp KEY.asc | --kms-key
ARN`` keeps them in the org's settings item (``export_recipients``), each with who added it
and when; every change is conditional on the org's version and writes an audit line. An
export (a zip, or a bulk job's every message) is refused with INVALID_REQUEST, before any
recording is read, unless its recipient is registered for the org.

A recipient is named by ``cert:<SHA-256 of the certificate's DER>``, ``pgp:<OpenPGP
fingerprint>`` or ``kms:<key ARN>``. PGP keys are checked by the PGP target's own parser
(``register_pgp_recipient`` calls ``export.pgp.pgp_recipient``) and stored as its public
packets, what the PGP target encrypts to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from kmsbridge.audit import audit
from kmsbridge.clock import iso
from kmsbridge.errors import ConflictError, InvalidRequest, NotFound
from kmsbridge.export.archive import (
    ExportTarget,
    certificate_target,
    check_registered,
    kms_target,
    not_registered,
    pgp_target,
)
from kmsbridge.export.pgp import pgp_recipient
from kmsbridge.formats import validate_org
from kmsbridge.keys.records import ExportRecipient, OrgRecord

__all__ = [
    "add_recipient",
    "certificate_recipient",
    "check_registered",
    "kms_recipient",
    "list_recipients",
    "register_pgp_recipient",
    "registered_recipient",
    "remove_recipient",
    "target_of",
]
from kmsbridge.keys.table import KeyStore

MAX_RECIPIENTS = 32  # the org's settings item stays far below DynamoDB's 400 KB
MAX_PGP_KEY_BYTES = 64 * 1024
_ATTEMPTS = 3


# ---------------------------------------------------------------- what a recipient is


def certificate_recipient(data: bytes, *, added_by: str, now: datetime) -> ExportRecipient:
    """A recipient certificate (PEM or DER), checked as ``certificate_target`` checks it."""
    certificate = certificate_target(data, now).certificate
    assert certificate is not None
    der = certificate.public_bytes(Encoding.DER)
    return ExportRecipient(
        recipient_id=f"cert:{hashlib.sha256(der).hexdigest()}",
        kind="cert",
        label=certificate.subject.rfc4514_string(),
        added_by=added_by,
        added_at=iso(now),
        material=der,
    )


def kms_recipient(arn: str, *, added_by: str, now: datetime) -> ExportRecipient:
    kms_target(arn)  # a full key ARN
    return ExportRecipient(f"kms:{arn}", "kms", arn, added_by, iso(now))


def register_pgp_recipient(data: bytes, *, added_by: str, now: datetime) -> ExportRecipient:
    """An OpenPGP public certificate (armored or binary), checked by the PGP target's own
    ``pgp_recipient`` (one public certificate, not revoked or expired, a live encryption
    subkey Sequoia's policy accepts; a secret key is refused, never stored)."""
    if len(data) > MAX_PGP_KEY_BYTES:
        raise InvalidRequest(f"the PGP key is larger than {MAX_PGP_KEY_BYTES} bytes")
    recipient = pgp_recipient(data, now)
    return ExportRecipient(
        recipient_id=f"pgp:{recipient.fingerprint}",
        kind="pgp",
        label=recipient.user_ids[0] if recipient.user_ids else recipient.fingerprint,
        added_by=added_by,
        added_at=iso(now),
        material=recipient.certificate,
    )


# ---------------------------------------------------------------- the registry


def add_recipient(store: KeyStore, org: str, recipient: ExportRecipient) -> ExportRecipient:
    """Register ``recipient`` for the org; adding a registered one again changes nothing."""

    def change(record: OrgRecord) -> tuple[ExportRecipient, ...] | None:
        if any(r.recipient_id == recipient.recipient_id for r in record.export_recipients):
            return None
        if len(record.export_recipients) >= MAX_RECIPIENTS:
            raise InvalidRequest(f"org {org!r} already has {MAX_RECIPIENTS} export recipients")
        return (*record.export_recipients, recipient)

    _update(store, org, change, "export-recipient-add", recipient.recipient_id, recipient.added_by)
    return recipient


def remove_recipient(store: KeyStore, org: str, recipient_id: str, *, removed_by: str) -> None:
    """Unregister a recipient: jobs still queued for it stop at their next message."""

    def change(record: OrgRecord) -> tuple[ExportRecipient, ...] | None:
        kept = tuple(r for r in record.export_recipients if r.recipient_id != recipient_id)
        if len(kept) == len(record.export_recipients):
            raise NotFound(f"{recipient_id} is not an export recipient of org {org!r}")
        return kept

    _update(store, org, change, "export-recipient-remove", recipient_id, removed_by)


def list_recipients(store: KeyStore, org: str) -> tuple[ExportRecipient, ...]:
    return store.get_org(validate_org(org)).export_recipients


def registered_recipient(store: KeyStore, org: str, recipient_id: str) -> ExportRecipient:
    """The org's registered recipient of that id, or INVALID_REQUEST (export nowhere else)."""
    for recipient in list_recipients(store, org):
        if recipient.recipient_id == recipient_id:
            return recipient
    raise InvalidRequest(not_registered(org, recipient_id))


def target_of(recipient: ExportRecipient, now: datetime | None = None) -> ExportTarget:
    """The export target of a registered recipient (its certificate still in date)."""
    if recipient.kind == "cert" and recipient.material is not None:
        return certificate_target(recipient.material, now)
    if recipient.kind == "pgp" and recipient.material is not None:
        return pgp_target(recipient.material, now)
    if recipient.kind == "kms":
        return kms_target(recipient.label)
    raise InvalidRequest(f"the export recipient {recipient.recipient_id} is malformed")


def _update(
    store: KeyStore,
    org: str,
    change: Callable[[OrgRecord], tuple[ExportRecipient, ...] | None],
    op: str,
    recipient_id: str,
    who: str,
) -> None:
    validate_org(org)
    for _ in range(_ATTEMPTS):
        record = store.get_org(org)
        recipients = change(record)
        if recipients is None:
            return
        try:
            store.update_org(record, export_recipients=recipients)
        except ConflictError:
            continue  # a rotation or another change bumped the version: read it again
        audit(op=op, org=org, outcome="ok", duration_ms=0.0, recipient=recipient_id, by=who)
        return
    raise ConflictError(f"org {org!r} kept changing; run the command again")
