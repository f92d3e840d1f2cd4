"""The scheduled rotation Lambda: ``handler.handler``.

The work is in ``kmsbridge.lifecycle.rotation``.

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

from kmsbridge.clock import utcnow
from kmsbridge.errors import InternalError
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging
from kmsbridge.lifecycle.rotation import rotate_due_orgs
from kmsbridge.services import Services

log = logging.getLogger("kmsbridge.lambda.rotation")
configure_logging()
services = Services()


def handler(event: object = None, context: object = None) -> dict[str, Any]:
    report = rotate_due_orgs(
        services.store,
        services.kms,
        now=utcnow(),
        lead=services.settings.rotation_lead,
        orgs=sorted(services.settings.allowed_orgs or ()) or None,
    ).to_dict()
    log.info(json.dumps(report, sort_keys=True))
    if report["failed"]:
        raise InternalError(f"rotation failed for {len(report['failed'])} org(s); see the log")
    return report
