"""Named exit statuses, one per error code: a script can tell revoked access from a typo."""

from __future__ import annotations

OK = 0
INTERNAL = 1
USAGE = 2  # INVALID_REQUEST and argparse's own usage errors
NOT_FOUND = 3
WRONG_ORG = 4
INTEGRITY = 5
ACCESS_REVOKED = 6
KMS_UNAVAILABLE = 7
INTERRUPTED = 130

BY_ERROR_CODE = {
    "INVALID_REQUEST": USAGE,
    "NOT_FOUND": NOT_FOUND,
    "WRONG_ORG": WRONG_ORG,
    "INTEGRITY": INTEGRITY,
    "ACCESS_REVOKED": ACCESS_REVOKED,
    "KMS_UNAVAILABLE": KMS_UNAVAILABLE,
    "UNAVAILABLE": KMS_UNAVAILABLE,  # retry later, as for KMS
    "INTERNAL": INTERNAL,
}
