"""Revocation by period: which KEKs a window of time covers, and the key-policy Deny for them.

Each KEK of an org is the active one for one period, from ``activated_at`` until
``retired_at`` (the active KEK's period is still open), and every recording made in that
period has its data key wrapped by that KEK. KMS sees the KEK id in the encryption context
of every unwrap (``kmsbridge:kek``), so one key-policy statement can deny ``kms:Decrypt`` for a
list of KEK ids: the recordings of those periods stop playing within the decryptor's maximum
age, every other recording keeps playing, and no extra KMS call is made per scope. The deny
names every principal (``"*"``), not only the decryptor role: the jobs role (bulk export),
the provisioning role (rewrap) and the customer's own administrators are all refused
``kms:Decrypt`` under those KEK ids, while the account root keeps ``kms:*`` on everything
else for administration. The condition is ``StringEquals`` on a single-valued key (the
context holds one KEK id), which matches when the KEK id equals any listed value. The unit
of revocation is a whole KEK period, so the interval that really stops playing is the union
of the periods the window touches, usually wider than the window asked for; a shorter
cryptoperiod gives finer revocation.

Nothing here talks to KMS: the statement is printed for the customer to put in their key
policy (or as the customer-key module's ``revoked_kek_ids``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kmsbridge.clock import iso, parse_iso
from kmsbridge.errors import InvalidRequest
from kmsbridge.formats import CONTEXT_KEK, validate_kek_id, validate_org
from kmsbridge.keys.records import KekRecord
from kmsbridge.keys.table import KeyStore

# The customer-key module's statement (terraform/modules/customer-key/main.tf): same sid,
# action, principal, operator and condition key, so the CLI and Terraform say one thing.
# Every principal: a revoked period is closed to playback, export and operators alike.
# StringEquals: the KEK context key is single-valued, and AWS's KMS guide warns against
# set operators on single-valued keys.
DENY_SID = "DenyDecryptRevokedKekPeriods"
DENY_OPERATOR = "StringEquals"
DENY_CONDITION_KEY = f"kms:EncryptionContext:{CONTEXT_KEK}"
DENY_PRINCIPAL = {"AWS": "*"}  # every principal, as aws_iam_policy_document renders "*"
TERRAFORM_VARIABLE = "revoked_kek_ids"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_FORMS = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"


@dataclass(frozen=True)
class Window:
    """The stretch of time asked for: [start, end), UTC. A date-only --to includes that day."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class KekPeriod:
    """When one KEK was the active one: [start, end); end None = still active."""

    kek_id: str
    state: str
    start: datetime
    end: datetime | None

    def overlaps(self, window: Window) -> bool:
        return self.start < window.end and (self.end is None or self.end > window.start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kek": self.kek_id,
            "state": self.state,
            "from": iso(self.start),
            "to": iso(self.end) if self.end else None,
        }


@dataclass(frozen=True)
class WindowPlan:
    """The KEKs a window covers, and what revoking or restoring them means."""

    org: str
    window: Window
    periods: tuple[KekPeriod, ...]  # every period the window touches, oldest first
    kms_keys: tuple[str, ...]  # the key policies the statement belongs in
    already_revoked: tuple[str, ...]  # the current value of revoked_kek_ids
    cryptoperiod_days: int
    now: datetime

    @property
    def kek_ids(self) -> list[str]:
        """The KEKs to deny: the touched periods' KEKs that still exist."""
        return [p.kek_id for p in self.periods if p.state != "destroyed"]

    @property
    def active(self) -> KekPeriod | None:
        return next((p for p in self.periods if p.end is None), None)

    @property
    def covered(self) -> list[tuple[datetime, datetime | None]]:
        """The union of the touched periods: what really stops playing."""
        merged: list[tuple[datetime, datetime | None]] = []
        for period in self.periods:
            if merged and merged[-1][1] is not None and period.start <= merged[-1][1]:
                end = merged[-1][1]
                merged[-1] = (merged[-1][0], None if period.end is None else max(end, period.end))
            else:
                merged.append((period.start, period.end))
        return merged


# ---------------------------------------------------------------- window and periods


def parse_window(start: str, end: str) -> Window:
    """--from and --to as a window; refuses a malformed date and --from after --to."""
    window = Window(_parse_date(start, "--from", end=False), _parse_date(end, "--to", end=True))
    if window.start >= window.end:
        raise InvalidRequest(f"--from {start} is after --to {end}: the window would be empty")
    return window


def _parse_date(text: str, flag: str, *, end: bool) -> datetime:
    try:
        if _DATE.fullmatch(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        return parse_iso(text)
    except (ValueError, TypeError):
        raise InvalidRequest(f"{flag} {text!r} is not a date: use {_DATE_FORMS}") from None


def kek_periods(keks: Sequence[KekRecord]) -> list[KekPeriod]:
    """Each KEK's active period, oldest first, from the key table's timestamps.

    A KEK without ``activated_at`` (made before it was recorded, or imported) counts from
    ``created_at``; a retired KEK without ``retired_at`` ends when the next one began.
    """
    starts = sorted((parse_iso(k.activated_at or k.created_at), k.kek_id, k) for k in keks)
    periods = []
    for i, (start, _, kek) in enumerate(starts):
        if kek.state == "active":
            end = None
        elif kek.retired_at:
            end = parse_iso(kek.retired_at)
        else:
            end = starts[i + 1][0] if i + 1 < len(starts) else start
        periods.append(KekPeriod(kek.kek_id, kek.state, start, end))
    return periods


def plan_window(
    store: KeyStore,
    org: str,
    start: str,
    end: str,
    *,
    already_revoked: Sequence[str] = (),
    now: datetime,
) -> WindowPlan:
    """The KEKs of ``org`` whose periods touch the window; refuses a window touching none."""
    window = parse_window(start, end)
    revoked = tuple(dict.fromkeys(validate_kek_id(k) for k in already_revoked))
    org_record = store.get_org(validate_org(org))
    keks = store.list_keks(org)
    touched = tuple(p for p in kek_periods(keks) if p.overlaps(window))
    if not touched:
        raise InvalidRequest(_no_kek_message(org, window, kek_periods(keks)))
    if all(p.state == "destroyed" for p in touched):
        raise InvalidRequest(
            f"the window covers only destroyed KEKs of org {org!r}: "
            "their recordings cannot be played already"
        )
    arns = dict.fromkeys(org_record.kms_keys)
    for kek in keks:
        if kek.kek_id in {p.kek_id for p in touched}:
            arns.update(dict.fromkeys(kek.kms_keys))
    return WindowPlan(org, window, touched, tuple(arns), revoked, org_record.cryptoperiod_days, now)


def _no_kek_message(org: str, window: Window, periods: list[KekPeriod]) -> str:
    asked = f"{iso(window.start)} to {iso(window.end)}"
    if not periods:
        return f"org {org!r} has no KEK, so the window {asked} covers none"
    return (
        f"the window {asked} covers no KEK of org {org!r}: its first KEK became active "
        f"on {iso(periods[0].start)}"
    )


# ---------------------------------------------------------------- statement and variable


def deny_statement(kek_ids: Sequence[str]) -> dict[str, Any]:
    """The key-policy statement: no kms:Decrypt by anyone under these KEK ids."""
    return {
        "Sid": DENY_SID,
        "Effect": "Deny",
        "Principal": DENY_PRINCIPAL,
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {DENY_OPERATOR: {DENY_CONDITION_KEY: list(kek_ids)}},
    }


def terraform_value(kek_ids: Sequence[str]) -> str:
    """``revoked_kek_ids = [...]`` for the customer-key module (HCL; a JSON list is valid HCL)."""
    if not kek_ids:
        return f"{TERRAFORM_VARIABLE} = []"
    lines = "".join(f"  {json.dumps(k)},\n" for k in kek_ids)
    return f"{TERRAFORM_VARIABLE} = [\n{lines}]"


def revoke_report(plan: WindowPlan) -> dict[str, Any]:
    """Everything ``access revoke-window`` prints, as one object."""
    ids = list(dict.fromkeys([*plan.already_revoked, *plan.kek_ids]))
    return _common(plan) | {
        "action": "revoke",
        "revoked_kek_ids": ids,
        "statement": deny_statement(ids),
        "terraform": terraform_value(ids),
        "notes": _notes(plan, restore=False),
    }


def restore_report(plan: WindowPlan) -> dict[str, Any]:
    """Everything ``access restore-window`` prints: the statement to remove, what remains."""
    remaining = [k for k in plan.already_revoked if k not in set(plan.kek_ids)]
    return _common(plan) | {
        "action": "restore",
        "statement_to_remove": deny_statement(plan.kek_ids),
        "revoked_kek_ids": remaining,
        "statement": deny_statement(remaining) if remaining else None,
        "terraform": terraform_value(remaining),
        "notes": _notes(plan, restore=True),
    }


def _common(plan: WindowPlan) -> dict[str, Any]:
    return {
        "org": plan.org,
        "asked": {"from": iso(plan.window.start), "to": iso(plan.window.end)},
        "covered": [{"from": iso(s), "to": iso(e) if e else None} for s, e in plan.covered],
        "keks": [p.to_dict() for p in plan.periods],
        "kek_ids": plan.kek_ids,
        "includes_active_kek": plan.active is not None,
        "kms_keys": list(plan.kms_keys),
        "cryptoperiod_days": plan.cryptoperiod_days,
        "as_of": iso(plan.now),
    }


def _notes(plan: WindowPlan, *, restore: bool) -> list[str]:
    notes = [_width_note(plan)]
    destroyed = [p.kek_id for p in plan.periods if p.state == "destroyed"]
    if destroyed:
        notes.append(
            f"{len(destroyed)} KEK(s) of the window were destroyed on purpose; their "
            "recordings cannot be played whatever the key policy says, so they are not listed"
        )
    active = plan.active
    if active is not None and not restore:
        notes.append(
            f"The window reaches today, so it covers the active KEK {active.kek_id}: "
            "new recordings will not play either, until the next rotation (kmsbridge kek "
            f"rotate {plan.org}) or a restore; those made before that rotation stay revoked "
            "until a restore."
        )
    change = "put back" if restore else "removed"
    notes.append(
        f"Apply to the key policy of each KMS key listed: playback of these periods is {change} "
        "within the decryptor's maximum age (KMSBRIDGE_MAX_AGE_SECONDS), when cached KEKs expire."
    )
    if not plan.already_revoked:
        notes.append(
            f"This {TERRAFORM_VARIABLE} value assumes no other period is revoked; if "
            "some are, pass the current value (--revoked-kek-ids) so that it keeps them."
        )
    return notes


def _width_note(plan: WindowPlan) -> str:
    first, last = plan.covered[0][0], plan.covered[-1][1]
    before = (plan.window.start - first).total_seconds() / 86400
    after = None if last is None else (last - plan.window.end).total_seconds() / 86400
    wider = before > 0 or after is None or after > 0
    span = f"{iso(first)} to {iso(last) if last else 'the next rotation'}"
    text = f"The revocation covers recordings made from {span} (whole KEK periods)"
    if wider:
        extra = f"{max(before, 0):.1f} day(s) before the window and " + (
            "everything after it until the next rotation"
            if after is None
            else f"{max(after, 0):.1f} day(s) after it"
        )
        text += f", wider than the window asked for: {extra}"
    return (
        f"{text}. A KEK is the unit of revocation: a shorter cryptoperiod (now "
        f"{plan.cryptoperiod_days} days) gives finer revocation."
    )
