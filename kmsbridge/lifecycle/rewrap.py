"""Move an org's KEKs to new KMS key ARNs (the customer changes keys, or adds a region).

Per KEK: unwrap under the KEK's own listed keys, wrap under the new ones with the same
context, unwrap the new blob under each new key and check it against the public key, and
only then replace the item's blob and ``kms_keys`` (conditional on its ``version``). When
every KEK is done, the org's settings item gets the new ARNs (conditional on the org's
``version``), so KEKs made by later rotations are wrapped under them.

Idempotent and resumable, with no progress file: a KEK whose ``kms_keys`` already are the
new set is done. A crash at any step leaves each item either untouched (old blob, old
ARNs) or replaced (new blob, new ARNs), and the decryptor unwraps each item with its own
``kms_keys``, so every KEK keeps working while the org is half done; running again
finishes the job. A rotation that adds a KEK under the old ARNs during a rewrap bumps the
org's version, the final update loses, and the pass runs again to pick that KEK up.
No recording is read or written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kmsbridge.audit import audit
from kmsbridge.crypto.kek import KekPublicKey, load_unwrapped_private_key
from kmsbridge.errors import ConflictError, IntegrityError, KmsBridgeError
from kmsbridge.formats import validate_org
from kmsbridge.keys.kms import KekWrapper, validate_key_arns, verify_wrapped
from kmsbridge.keys.records import KekRecord
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


def rewrap_org(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    kms_key_arns: Sequence[str],
    *,
    progress: Progress | None = None,
) -> RewrapResult:
    """Rewrap every live KEK of the org under ``kms_key_arns``, then record them for the org."""
    validate_org(org)
    target = tuple(validate_key_arns(kms_key_arns))
    started = time.perf_counter()
    outcomes: dict[str, str] = {}
    try:
        for _ in range(MAX_PASSES):
            if _one_pass(store, kms, org, target, outcomes, progress):
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
    target: tuple[str, ...],
    outcomes: dict[str, str],
    progress: Progress | None,
) -> bool:
    """Rewrap what is left; True once the org's settings name the new keys."""
    org_record = store.get_org(org)
    records = store.list_keks(org)
    for index, record in enumerate(records, 1):
        outcome = rewrap_kek(store, kms, record, target)
        if outcomes.get(record.kek_id) != REWRAPPED:  # a later pass finds it done already
            outcomes[record.kek_id] = outcome
        if progress is not None:
            progress(RewrapStep(index, len(records), record.kek_id, outcome))
    if same_keys(org_record.kms_keys, target):
        return True
    try:
        store.update_org_keys(org_record, target)
    except ConflictError:
        return False  # a rotation (or another rewrap) changed the org: look again
    return True


def rewrap_kek(store: KeyStore, kms: KekWrapper, record: KekRecord, target: Sequence[str]) -> str:
    """Rewrap one KEK item under ``target`` (see the module docstring for the order)."""
    wrapped = record.wrapped_private_key
    if record.state == "destroyed" or wrapped is None:
        return DESTROYED
    if same_keys(record.kms_keys, target):
        return ALREADY
    blob = _new_blob(kms, record, wrapped, target)
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


def _new_blob(kms: KekWrapper, record: KekRecord, wrapped: bytes, target: Sequence[str]) -> bytes:
    """Unwrap under the item's keys, wrap under ``target``, prove each new key unwraps it."""
    public = KekPublicKey.from_der(record.public_key)
    if public.kek_id != record.kek_id:
        raise IntegrityError("the KEK item's public key does not match its KEK id")
    context = {"org": record.org, "kek_id": record.kek_id}
    pkcs8 = kms.unwrap(wrapped, kms_key_arns=record.kms_keys, **context)
    load_unwrapped_private_key(pkcs8, public)  # never rewrap a blob that is not this KEK's
    blob = kms.wrap(pkcs8, kms_key_arns=target, **context)
    del pkcs8
    for arn in dict.fromkeys(target):
        # Each new key alone must unwrap it: a key the platform cannot use fails the
        # rewrap now, not a playback later.
        verify_wrapped(kms, blob, org=record.org, public=public, kms_key_arns=[arn])
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
