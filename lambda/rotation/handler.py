"""The scheduled rotation Lambda: ``handler.handler``.

The work is in ``kmsbridge.lifecycle.rotation`` and ``kmsbridge.integrations.s3``.

Rotates every org whose active KEK's cryptoperiod ends within the lead time
(KMSBRIDGE_ROTATION_LEAD_HOURS, default 24: a daily schedule then never leaves an org
with an expired active KEK). Environment: KMSBRIDGE_TABLE, and KMSBRIDGE_ALLOWED_ORGS
(comma-separated: the orgs this function serves, read one by one; unset: every org in the
table, by a scan, which a role limited to some orgs may not do). If any org failed, the
invocation fails after all orgs were tried, so the Errors metric and the schedule's retry
see it; rerunning only rotates what is still due.

Every run also deletes the decryptor's expired playback copies when
KMSBRIDGE_PLAYBACK_BUCKET is set; the event ``{"task": "sweep-playback"}`` does only that,
for a schedule more frequent than rotation's (a copy then outlives its URL by at most
that schedule's period). ``{"task": "access-canary"}`` runs the access canary
(``integrations.aws_lambda.canary``); ``{"task": "rotate"}``, or no task, rotates.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kmsbridge.clock import utcnow
from kmsbridge.errors import InternalError, InvalidRequest
from kmsbridge.integrations.aws_lambda.canary import run_access_canary
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging
from kmsbridge.integrations.s3 import sweep_playback_copies
from kmsbridge.lifecycle.rotation import rotate_due_orgs
from kmsbridge.services import Services

log = logging.getLogger("kmsbridge.lambda.rotation")
configure_logging()
services = Services()


def handler(event: object = None, context: object = None) -> dict[str, Any]:
    task = event.get("task", "rotate") if isinstance(event, dict) else "rotate"
    if task == "sweep-playback":
        report: dict[str, Any] = {"playback_copies_deleted": sweep()}
    elif task == "access-canary":
        report = run_access_canary(services).to_dict()
    elif task == "rotate":
        return rotate()
    else:
        raise InvalidRequest(f"unknown task {task!r} (rotate, access-canary, sweep-playback)")
    log.info(json.dumps(report, sort_keys=True))
    return report


def rotate() -> dict[str, Any]:
    report = rotate_due_orgs(
        services.store,
        services.kms,
        now=utcnow(),
        lead=services.settings.rotation_lead,
        orgs=sorted(services.settings.allowed_orgs or ()) or None,
        certifier=services.certifier,
    ).to_dict()
    report["playback_copies_deleted"] = sweep()
    log.info(json.dumps(report, sort_keys=True))
    if report["failed"]:
        raise InternalError(f"rotation failed for {len(report['failed'])} org(s); see the log")
    return report


def sweep() -> int | None:
    """Delete the expired playback copies of every org; None when no bucket is configured."""
    bucket = services.settings.playback_bucket
    if bucket is None:
        return None
    return sweep_playback_copies(services.clients.client("s3"), bucket)
