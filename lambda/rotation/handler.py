"""The scheduled rotation Lambda: ``handler.handler``. The work is in ``kmsbridge.lifecycle``.

Rotates every org whose active KEK's cryptoperiod ends within the lead time
(KMSBRIDGE_ROTATION_LEAD_HOURS, default 24: a daily schedule then never leaves an org
with an expired active KEK). Environment: KMSBRIDGE_TABLE, and KMSBRIDGE_ALLOWED_ORGS
(comma-separated: the orgs this function serves, read one by one; unset: every org in the
table, by a scan, which a role limited to some orgs may not do). If any org failed, the
invocation fails after all orgs were tried, so the Errors metric and the schedule's retry
see it; rerunning only rotates what is still due.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kmsbridge.errors import InternalError
from kmsbridge.jobs import Services
from kmsbridge.lambda_telemetry import configure_logging
from kmsbridge.lifecycle import orgs_from_env, rotate_due_orgs, rotation_lead_from_env, utcnow

log = logging.getLogger("kmsbridge.lambda.rotation")
configure_logging()
services = Services()


def handler(event: object = None, context: object = None) -> dict[str, Any]:
    report = rotate_due_orgs(
        services.store,
        services.kms,
        now=utcnow(),
        lead=rotation_lead_from_env(),
        orgs=orgs_from_env(),
    ).to_dict()
    log.info(json.dumps(report, sort_keys=True))
    if report["failed"]:
        raise InternalError(f"rotation failed for {len(report['failed'])} org(s); see the log")
    return report
