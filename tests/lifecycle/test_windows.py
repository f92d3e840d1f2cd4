"""Revocation by period: which KEKs a window covers, the interval really covered, refusals.

The key table is moto's DynamoDB (in process); the KEK items here carry made-up public
keys and blobs because nothing in windows.py unwraps: the end-to-end test with real KEKs
and KMS is tests/lifecycle/test_windows_e2e.py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from kmsbridge.aws import AwsClients
from kmsbridge.clock import iso
from kmsbridge.errors import InvalidRequest, NotFound
from kmsbridge.keys.records import KekRecord, OrgRecord
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.windows import (
    DENY_CONDITION_KEY,
    DENY_OPERATOR,
    DENY_SID,
    deny_statement,
    kek_periods,
    parse_window,
    plan_window,
    restore_report,
    revoke_report,
    terraform_value,
)
from tests.conftest import FIXED_NOW

ARN = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
T0 = FIXED_NOW  # 2026-11-01T12:00:00Z
T1 = T0 + timedelta(days=90)  # 2027-01-30T12:00:00Z
T2 = T0 + timedelta(days=180)  # 2027-04-30T12:00:00Z
NOW = T2 + timedelta(days=20)


def fake_kek(org: str, at: datetime) -> KekRecord:
    """A KEK item as the table holds it; no key material is needed to plan a window."""
    return KekRecord(
        org=org,
        kek_id=os.urandom(32).hex(),
        public_key=b"spki",
        wrapped_private_key=b"blob",
        kms_keys=(ARN,),
        state="active",
        created_at=iso(at),
        activated_at=iso(at),
    )


@pytest.fixture
def table(aws: AwsClients) -> tuple[KeyStore, list[str]]:
    """Org acme with three KEKs: active from T0, T1 and T2 (rotations on a fixed clock)."""
    store = KeyStore(aws.client("dynamodb"), "keks-windows")
    store.create_table()
    first = fake_kek("acme", T0)
    org = OrgRecord("acme", (ARN,), 90, first.kek_id, iso(T0))
    store.create_org(org, first)
    ids = [first.kek_id]
    for at in (T1, T2):
        kek = fake_kek("acme", at)
        org = store.activate(store.get_org("acme"), kek, iso(at))
        ids.append(kek.kek_id)
    return store, ids


def hcl_value(text: str) -> Any:
    """The value of revoked_kek_ids in a printed assignment, read as Terraform would."""
    options = SerializationOptions(strip_string_quotes=True)
    return hcl2.loads(text + "\n", serialization_options=options)["revoked_kek_ids"]


def plan(store: KeyStore, start: str, end: str, **kw: Any) -> Any:
    return plan_window(store, "acme", start, end, now=NOW, **kw)


# ------------------------------------------------------------ windows and periods


def test_a_window_inside_one_period_covers_that_whole_period(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-02-01", "2027-02-28"))
    assert report["kek_ids"] == [ids[1]]
    assert report["asked"] == {"from": "2027-02-01T00:00:00Z", "to": "2027-03-01T00:00:00Z"}
    assert report["covered"] == [{"from": iso(T1), "to": iso(T2)}]
    assert report["includes_active_kek"] is False
    width = report["notes"][0]
    assert "wider than the window asked for" in width
    assert "1.5 day(s) before the window and 60.5 day(s) after it" in width
    assert "a shorter cryptoperiod (now 90 days) gives finer revocation" in width
    assert not any("reaches today" in n for n in report["notes"])
    assert report["kms_keys"] == [ARN]


def test_a_window_across_a_rotation_covers_both_periods_as_one_interval(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-01-15", "2027-02-05"))
    assert report["kek_ids"] == ids[:2]
    assert report["covered"] == [{"from": iso(T0), "to": iso(T2)}]
    assert [k["state"] for k in report["keks"]] == ["retired", "retired"]


def test_a_window_that_is_exactly_one_period_is_not_wider(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, iso(T1), iso(T2)))
    assert report["kek_ids"] == [ids[1]]
    assert "wider" not in report["notes"][0]


def test_period_edges_are_half_open(table: Any) -> None:
    store, ids = table
    # Ends exactly when KEK 2 begins: only KEK 1. Begins exactly when KEK 1 ends: only KEK 2.
    assert plan(store, "2026-12-01", iso(T1)).kek_ids == [ids[0]]
    assert plan(store, iso(T1), "2027-02-01").kek_ids == [ids[1]]


def test_a_window_reaching_today_covers_the_active_kek_and_says_so(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-04-01", iso(NOW)))
    assert report["kek_ids"] == ids[1:]
    assert report["includes_active_kek"] is True
    assert report["covered"] == [{"from": iso(T1), "to": None}]
    assert report["keks"][-1] == {"kek": ids[2], "state": "active", "from": iso(T2), "to": None}
    (today,) = [n for n in report["notes"] if "reaches today" in n]
    assert f"active KEK {ids[2][:12]}" in today
    assert "new recordings will not play" in today
    assert "until the next rotation (kmsbridge kek rotate acme) or a restore" in today
    assert "everything after it until the next rotation" in report["notes"][0]


def test_a_one_day_window_is_that_whole_day() -> None:
    window = parse_window("2027-03-10", "2027-03-10")
    assert (iso(window.start), iso(window.end)) == ("2027-03-10T00:00:00Z", "2027-03-11T00:00:00Z")


def test_timestamps_are_taken_as_given() -> None:
    window = parse_window("2027-03-10T08:00:00Z", "2027-03-10T09:30:00Z")
    assert window.end - window.start == timedelta(minutes=90)


# ------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "start, end, flag",
    [
        ("yesterday", "2027-03-01", "--from"),
        ("2027-13-01", "2027-03-01", "--from"),
        ("2027-02-30", "2027-03-01", "--from"),
        ("2027-03-01T00:00:00", "2027-03-02", "--from"),
        ("2027-03-01", "", "--to"),
        ("2027-03-01", "01/04/2027", "--to"),
        ("2027-03-01", "2027-04-01T25:00:00Z", "--to"),
    ],
)
def test_malformed_dates_are_refused(start: str, end: str, flag: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_window(start, end)
    assert info.value.message.startswith(f"{flag} ")
    assert "is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)" in info.value.message


@pytest.mark.parametrize(
    "start, end",
    [("2027-04-01", "2027-03-01"), ("2027-03-01T10:00:00Z", "2027-03-01T10:00:00Z")],
)
def test_from_after_to_is_refused(start: str, end: str) -> None:
    with pytest.raises(InvalidRequest, match=f"--from {start} is after --to {end}"):
        parse_window(start, end)


def test_a_window_covering_no_kek_is_refused(table: Any) -> None:
    store, _ = table
    with pytest.raises(InvalidRequest) as info:
        plan(store, "2026-01-01", "2026-06-30")
    assert info.value.message == (
        "the window 2026-01-01T00:00:00Z to 2026-07-01T00:00:00Z covers no KEK of org 'acme': "
        f"its first KEK became active on {iso(T0)}"
    )


def test_an_unknown_org_is_not_found(table: Any) -> None:
    store, _ = table
    with pytest.raises(NotFound):
        plan_window(store, "nobody", "2027-01-01", "2027-01-02", now=NOW)


def test_no_role_is_needed_to_print_the_deny(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-02-01", "2027-02-02"))
    assert report["kek_ids"] == [ids[1]] and "decryptor_role_arn" not in report


def test_already_revoked_ids_must_be_kek_ids(table: Any) -> None:
    store, _ = table
    with pytest.raises(InvalidRequest, match="64 lowercase hex"):
        plan(store, "2027-02-01", "2027-02-02", already_revoked=["ABC"])


def test_destroyed_keks_are_not_listed(table: Any) -> None:
    store, ids = table
    first = store.get_kek("acme", ids[0])
    store.update_kek(first, state="destroyed", wrapped_private_key=None, destroyed_at=iso(T2))
    report = revoke_report(plan(store, "2027-01-15", "2027-02-05"))
    assert report["kek_ids"] == [ids[1]]
    assert any("destroyed on purpose" in n for n in report["notes"])
    with pytest.raises(InvalidRequest, match="only destroyed KEKs"):
        plan(store, "2026-12-01", "2026-12-02")


# ------------------------------------------------------------ statement, variable, restore


def test_the_statement_denies_decrypt_to_everyone_for_exactly_those_ids(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-02-01", "2027-02-28"))
    assert report["statement"] == {
        "Sid": DENY_SID,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:kmsbridge:kek": [ids[1]]}},
    }
    assert (DENY_OPERATOR, DENY_CONDITION_KEY) == (
        "StringEquals",
        "kms:EncryptionContext:kmsbridge:kek",
    )
    assert hcl_value(report["terraform"]) == [ids[1]]


def test_revoking_keeps_the_periods_already_revoked(table: Any) -> None:
    store, ids = table
    report = revoke_report(plan(store, "2027-02-01", "2027-02-28", already_revoked=[ids[0]]))
    assert report["revoked_kek_ids"] == [ids[0], ids[1]]
    assert report["statement"]["Condition"][DENY_OPERATOR][DENY_CONDITION_KEY] == ids[:2]
    assert hcl_value(report["terraform"]) == ids[:2]
    again = revoke_report(plan(store, "2027-02-01", "2027-02-28", already_revoked=ids[:2]))
    assert again["revoked_kek_ids"] == ids[:2]


def test_restoring_prints_the_statement_to_remove_and_what_remains(table: Any) -> None:
    store, ids = table
    report = restore_report(plan(store, "2027-02-01", "2027-02-28", already_revoked=ids[:2]))
    assert report["action"] == "restore"
    assert report["statement_to_remove"] == deny_statement([ids[1]])
    assert report["revoked_kek_ids"] == [ids[0]]
    assert report["statement"] == deny_statement([ids[0]])
    assert hcl_value(report["terraform"]) == [ids[0]]

    last = restore_report(plan(store, "2027-02-01", "2027-02-28", already_revoked=[ids[1]]))
    assert last["statement"] is None
    assert last["terraform"] == "revoked_kek_ids = []"
    assert hcl_value(last["terraform"]) == []


def test_terraform_value_passes_the_module_validation() -> None:
    ids = [os.urandom(32).hex() for _ in range(3)]
    parsed = hcl_value(terraform_value(ids))
    assert parsed == ids and all(len(k) == 64 and k == k.lower() for k in parsed)


# ------------------------------------------------------------ periods from the table


def test_periods_fall_back_when_timestamps_are_missing(table: Any) -> None:
    store, ids = table
    keks = store.list_keks("acme")
    # An older item: no activated_at (counts from created_at), retired without retired_at
    # (ends when the next KEK began).
    patched = [
        replace(k, activated_at=None, retired_at=None) if k.kek_id == ids[0] else k for k in keks
    ]
    periods = {p.kek_id: p for p in kek_periods(patched)}
    assert (periods[ids[0]].start, periods[ids[0]].end) == (T0, T1)
    assert periods[ids[2]].end is None
