"""The one access-state vocabulary: what an org's KEK outcomes say about its KMS access.

Used by the Lambda ``access-check`` op and by ``kmsbridge access check``, so both say the
same word for the same outcomes. A KEK's outcome (``Decryptor.check_access``) is ``ok``,
``destroyed`` (crypto-shredded on purpose: a state, not a failure, and not counted) or the
error code of its unwrap.

| state            | meaning                                                           |
|------------------|-------------------------------------------------------------------|
| `ok`             | every live KEK unwraps now                                        |
| `partly-revoked` | some live KEKs unwrap, KMS refuses the others (a revoked period)  |
| `revoked`        | KMS refuses every live KEK that it answered for                   |
| `unavailable`    | KMS (or the key table) could not be reached: retry                |
| `not-found`      | a KMS key of the org does not exist                               |
| `integrity`      | a wrapped KEK failed its checks                                   |
| `error`          | any other failure                                                 |
| `no-keks`        | the org has no live KEK                                           |
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

OK = "ok"
DESTROYED = "destroyed"


class AccessState(StrEnum):
    OK = "ok"
    PARTLY_REVOKED = "partly-revoked"
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not-found"
    INTEGRITY = "integrity"
    ERROR = "error"
    NO_KEKS = "no-keks"


_BY_CODE = {
    "KMS_UNAVAILABLE": AccessState.UNAVAILABLE,
    "UNAVAILABLE": AccessState.UNAVAILABLE,
    "NOT_FOUND": AccessState.NOT_FOUND,
    "INTEGRITY": AccessState.INTEGRITY,
}


def access_state(outcomes: Sequence[str]) -> AccessState:
    """The org's state from its KEKs' outcomes; a refusal by KMS outranks everything else."""
    live = [o for o in outcomes if o != DESTROYED]
    if not live:
        return AccessState.NO_KEKS
    if "ACCESS_REVOKED" in live:
        return AccessState.PARTLY_REVOKED if OK in live else AccessState.REVOKED
    failures = [o for o in live if o != OK]
    if not failures:
        return AccessState.OK
    for code, state in _BY_CODE.items():
        if code in failures:
            return state
    return AccessState.ERROR


# The error code (and so the exit status) of a state that is not ``ok``: cron and CI alarm
# on a non-zero exit of ``kmsbridge access check``.
ERROR_CODE_OF_STATE = {
    AccessState.PARTLY_REVOKED: "ACCESS_REVOKED",
    AccessState.REVOKED: "ACCESS_REVOKED",
    AccessState.UNAVAILABLE: "KMS_UNAVAILABLE",
    AccessState.NOT_FOUND: "NOT_FOUND",
    AccessState.INTEGRITY: "INTEGRITY",
    AccessState.ERROR: "INTERNAL",
    AccessState.NO_KEKS: "NOT_FOUND",
}


def access_record(
    state: AccessState, at: str, failed: tuple[str, str, str | None] | None = None
) -> dict[str, str]:
    """What the org's settings item keeps of one access check (``org show`` prints it).

    ``failed`` is the first KEK that did not unwrap: (KEK id, outcome code, message).
    """
    record = {"at": at, "state": str(state)}
    if failed is not None:
        kek, code, message = failed
        record |= {"kek": kek, "code": code, "message": message or code}
    return record
