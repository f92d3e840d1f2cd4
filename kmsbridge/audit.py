"""One structured audit line per decryptor decision: who, which key, what happened.

Fields: org, KEK id, recording id, message id, op, outcome (``ok`` or an error code),
cache (``hit``, ``miss``, ``shared``, ``dek-hit``), sealed (the KEM a released key was
sealed to; absent: released unsealed), duration, request id. Never a key, a wrapped blob,
a header or recording bytes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

audit_log = logging.getLogger("kmsbridge.audit")


def audit(
    *,
    op: str,
    org: str | None,
    outcome: str,
    duration_ms: float,
    kek: str | None = None,
    recording: str | None = None,
    message_id: str | None = None,
    cache: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> None:
    if not audit_log.isEnabledFor(logging.INFO):
        return
    line = {
        "audit": "kmsbridge",
        "op": op,
        "org": org,
        "kek": kek,
        "recording": recording,
        "message_id": message_id,
        "outcome": outcome,
        "cache": cache,
        "duration_ms": round(duration_ms, 3),
        "request_id": request_id,
        **extra,
    }
    audit_log.info(json.dumps({k: v for k, v in line.items() if v is not None}, sort_keys=True))
