"""Move an org's KEKs to new KMS key ARNs (the customer changes keys, or adds a region).

Two steps. ``set_org_kms_keys`` is the operator's decision, audited: it registers the new
ARNs in the org's settings item (who and when beside them) and keeps the replaced ones as
``previous_kms_keys``, accepted to unwrap but never to wrap. ``rewrap_org`` then moves each
KEK to the org's registered keys; it takes no ARNs from its caller, so a queued job (or
anyone who can send one) can only finish a move the operator decided. ``change_org_kms_keys``
does both (``kmsbridge org set-kms-keys`` and ``kek rewrap --kms-key``).

Per KEK: unwrap under the KEK's own listed keys (each must be registered, current or
previous), wrap under the registered keys with the same context, unwrap the new blob under
each new key and check it against the public key, and only then replace the item's blob and
``kms_keys`` (conditional on its ``version``). When no live KEK lists a previous key any
more, the org's ``previous_kms_keys`` are dropped (conditional on the org's ``version``).

Idempotent and resumable, with no progress file: a KEK whose ``kms_keys`` already are the
registered set is done. A crash at any step leaves each item either untouched (old blob, old
ARNs) or replaced (new blob, new ARNs), and the decryptor unwraps each item with its own
``kms_keys`` (all registered), so every KEK keeps working while the org is half done;
running again finishes the job. A rotation during a rewrap wraps its new KEK under the
registered keys already. No recording is read or written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kmsbridge.audit import audit
from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.kek import KekPublicKey, load_unwrapped_private_key
from kmsbridge.errors import ConflictError, IntegrityError, KmsBridgeError
from kmsbridge.formats import validate_org
from kmsbridge.keys.kms import KekWrapper, validate_key_arns, verify_wrapped
from kmsbridge.keys.records import KekRecord, OrgRecord
from kmsbridge.keys.table import KeyStore

# Passes over the org before giving up on a table that keeps changing under us.
MAX_PASSES = 3

REWRAPPED = "rewrapped"
ALREADY = "already"  # the item already lists exactly the new keys
DESTROYED = "destroyed"  # crypto-shredded: nothing to rewrap


@dataclass(frozen=True)
class RewrapStep:
    """Progress: KEK ``index`` of ``total`` in this pass, and what happened to it."""

    index: int
    total: int
    kek_id: str
    outcome: str


@dataclass(frozen=True)
class RewrapResult:
    org: str
    kms_keys: tuple[str, ...]
    outcomes: dict[str, str]  # KEK id -> rewrapped | already | destroyed

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


Progress = Callable[[RewrapStep], None]


def set_org_kms_keys(
    store: KeyStore,
    org: str,
    kms_key_arns: Sequence[str],
    *,
    set_by: str,
    now: datetime | None = None,
) -> OrgRecord:
    """Register ``kms_key_arns`` as the org's KMS keys (the operator's audited decision).

    No KMS call. The keys they replace stay accepted for unwrapping until ``rewrap_org``
    has moved every KEK off them. Registering the current set again changes nothing.
    """
    validate_org(org)
    target = tuple(validate_key_arns(kms_key_arns))
    for _ in range(MAX_PASSES):
        current = store.get_org(org)
        if same_keys(current.kms_keys, target):
            return current
        proposed = _registering(current, target)
        try:
            updated = store.update_org(
                current,
                kms_keys=target,
                previous_kms_keys=proposed.previous_kms_keys,
                kms_keys_set_by=set_by,
                kms_keys_set_at=iso(now or utcnow()),
            )
        except ConflictError:
            continue  # a rotation bumped the org's version: read it again
        audit(
            op="org-set-kms-keys",
            org=org,
            outcome="ok",
            duration_ms=0.0,
            kms_keys=list(target),
            previous_kms_keys=list(proposed.previous_kms_keys),
            set_by=set_by,
        )
        return updated
    raise ConflictError(f"org {org!r} kept changing; run the command again")


def _registering(org: OrgRecord, target: tuple[str, ...]) -> OrgRecord:
    """The org as it will be once ``target`` is registered: the keys it replaces stay
    accepted for unwrapping (previous), never for wrapping."""
    old = (*org.kms_keys, *org.previous_kms_keys)
    previous = tuple(a for a in dict.fromkeys(old) if a not in target)
    return replace(org, kms_keys=target, previous_kms_keys=previous)


def change_org_kms_keys(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    kms_key_arns: Sequence[str],
    *,
    set_by: str,
    progress: Progress | None = None,
) -> RewrapResult:
    """``set_org_kms_keys`` then ``rewrap_org``: what the operator's commands run.

    New keys are tried first, in memory, on the org's active KEK (unwrap, wrap under them,
    each alone unwraps it): a key the platform cannot use is refused with nothing written.
    """
    validate_org(org)
    target = tuple(validate_key_arns(kms_key_arns))
    org_record, active = store.active_kek(org)
    if not same_keys(org_record.kms_keys, target) and active.wrapped_private_key is not None:
        _new_blob(kms, _registering(org_record, target), active, active.wrapped_private_key)
    set_org_kms_keys(store, org, target, set_by=set_by)
    return rewrap_org(store, kms, org, progress=progress)


def rewrap_org(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    *,
    progress: Progress | None = None,
) -> RewrapResult:
    """Rewrap every live KEK of the org under its registered KMS keys; drop previous keys."""
    validate_org(org)
    started = time.perf_counter()
    outcomes: dict[str, str] = {}
    try:
        for _ in range(MAX_PASSES):
            target = _one_pass(store, kms, org, outcomes, progress)
            if target is not None:
                break
        else:
            raise ConflictError(f"org {org!r} kept changing during the rewrap; run it again")
    except KmsBridgeError as exc:
        _audit(org, exc.code, started, outcomes)
        raise
    _audit(org, "ok", started, outcomes)
    return RewrapResult(org, target, outcomes)


def _one_pass(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    outcomes: dict[str, str],
    progress: Progress | None,
) -> tuple[str, ...] | None:
    """Rewrap what is left; the registered keys once no KEK needs the previous ones."""
    org_record = store.get_org(org)
    records = store.list_keks(org)
    for index, record in enumerate(records, 1):
        outcome = rewrap_kek(store, kms, org_record, record)
        if outcomes.get(record.kek_id) != REWRAPPED:  # a later pass finds it done already
            outcomes[record.kek_id] = outcome
        if progress is not None:
            progress(RewrapStep(index, len(records), record.kek_id, outcome))
    if not org_record.previous_kms_keys:
        return org_record.kms_keys
    try:
        store.update_org(org_record, previous_kms_keys=())
    except ConflictError:
        return None  # a rotation (or another rewrap) changed the org: look again
    return org_record.kms_keys


def rewrap_kek(store: KeyStore, kms: KekWrapper, org: OrgRecord, record: KekRecord) -> str:
    """Rewrap one KEK item under the org's registered keys (see the module docstring)."""
    wrapped = record.wrapped_private_key
    target = org.kms_keys
    if record.state == "destroyed" or wrapped is None:
        return DESTROYED
    if same_keys(record.kms_keys, target):
        return ALREADY
    blob = _new_blob(kms, org, record, wrapped)
    for _ in range(MAX_PASSES):
        try:
            store.update_kek(record, wrapped_private_key=blob, kms_keys=tuple(target))
            return REWRAPPED
        except ConflictError:
            current = store.get_kek(record.org, record.kek_id)
        if current.state == "destroyed" or same_keys(current.kms_keys, target):
            return DESTROYED if current.state == "destroyed" else ALREADY
        if current.wrapped_private_key != record.wrapped_private_key:
            break
        record = current  # only its state or dates changed (a retire): the new blob still fits
    raise ConflictError(f"KEK {record.kek_id} changed during the rewrap; run it again")


def _new_blob(kms: KekWrapper, org: OrgRecord, record: KekRecord, wrapped: bytes) -> bytes:
    """Unwrap under the item's keys, wrap under the registered ones, prove each unwraps it."""
    public = KekPublicKey.from_der(record.public_key)
    if public.kek_id != record.kek_id:
        raise IntegrityError("the KEK item's public key does not match its KEK id")
    context = {"org": record.org, "kek_id": record.kek_id}
    pkcs8 = kms.unwrap(
        wrapped, kms_key_arns=record.kms_keys, registered=org.unwrap_kms_keys, **context
    )
    load_unwrapped_private_key(pkcs8, public)  # never rewrap a blob that is not this KEK's
    blob = kms.wrap(pkcs8, kms_key_arns=org.kms_keys, registered=org.kms_keys, **context)
    del pkcs8
    for arn in dict.fromkeys(org.kms_keys):
        # Each new key alone must unwrap it: a key the platform cannot use fails the
        # rewrap now, not a playback later.
        verify_wrapped(
            kms, blob, org=record.org, public=public, kms_key_arns=[arn], registered=org.kms_keys
        )
    return blob


def same_keys(a: Sequence[str], b: Sequence[str]) -> bool:
    return set(a) == set(b)


def _audit(org: str, outcome: str, started: float, outcomes: dict[str, str]) -> None:
    audit(
        op="kek-rewrap",
        org=org,
        outcome=outcome,
        duration_ms=(time.perf_counter() - started) * 1000,
        rewrapped=sum(1 for o in outcomes.values() if o == REWRAPPED),
    )
