"""The access canary: each served org's live KEKs unwrapped through KMS now, on a schedule.

Run by the rotation function on ``{"task": "access-canary"}``. Per org it records the
check (and, when it failed, the org's last access error) in the org's settings item, which
``kmsbridge org show`` prints, and per run it emits two metrics the platform module's
alarms watch: ``OrgAccessRevoked`` (orgs whose KMS key refuses some or all of their KEKs)
and ``OrgAccessUnavailable`` (orgs whose KMS key or key table could not be reached). A
deliberate revocation by the customer looks the same as an accident: the alarm says
"look", the audit lines and the org item say which KEK and which code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kmsbridge.clock import iso, utcnow
from kmsbridge.decryptor.access import DESTROYED, AccessState, access_record, access_state
from kmsbridge.errors import KmsBridgeError
from kmsbridge.integrations.aws_lambda import telemetry
from kmsbridge.services import Services

log = logging.getLogger("kmsbridge.lambda.canary")
REVOKED_STATES = (AccessState.REVOKED, AccessState.PARTLY_REVOKED)


@dataclass
class CanaryReport:
    """Each org's access state after one run, and the orgs whose record could not be kept."""

    states: dict[str, str] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)

    def count(self, *states: AccessState) -> int:
        return sum(state in states for state in self.states.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "access": dict(sorted(self.states.items())),
            "revoked": self.count(*REVOKED_STATES),
            "unavailable": self.count(AccessState.UNAVAILABLE),
            "unrecorded": self.unrecorded,
        }


def run_access_canary(services: Services, orgs: Sequence[str] | None = None) -> CanaryReport:
    """Check every org (``orgs``, else the served ones, else every org in the table)."""
    if orgs is None:
        served = services.settings.allowed_orgs
        orgs = sorted(served) if served else [o.org for o in services.store.list_orgs()]
    report = CanaryReport()
    for org in orgs:
        state, record = _check(services, org)
        report.states[org] = str(state)
        try:
            services.store.record_access_check(org, record)
        except KmsBridgeError as exc:
            log.error("access of org %s not recorded: %s", org, exc.code)
            report.unrecorded.append(org)
    telemetry.emit(
        {"Function": telemetry.function_name()},
        {
            "OrgAccessRevoked": (report.count(*REVOKED_STATES), "Count"),
            "OrgAccessUnavailable": (report.count(AccessState.UNAVAILABLE), "Count"),
        },
    )
    return report


def _check(services: Services, org: str) -> tuple[AccessState, dict[str, str]]:
    at = iso(utcnow())
    try:
        checks = services.decryptor.check_access(org)
    except KmsBridgeError as exc:  # the key table itself failed: the org could not be checked
        state = AccessState.UNAVAILABLE if exc.retryable else AccessState.ERROR
        return state, access_record(state, at, ("", exc.code, exc.message))
    state = access_state([c.outcome for c in checks])
    failed = next((c for c in checks if c.outcome not in ("ok", DESTROYED)), None)
    first = None if failed is None else (failed.kek_id, failed.outcome, failed.message)
    return state, access_record(state, at, first)
