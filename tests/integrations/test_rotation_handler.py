"""The scheduled rotation: the library on a fake clock, the Lambda handler on the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.clock import iso, utcnow
from kmsbridge.errors import InternalError, InvalidRequest
from kmsbridge.lifecycle.rotation import create_org, rotate_due_orgs
from kmsbridge.services import Settings
from tests.conftest import FIXED_NOW, World
from tests.integrations.test_jobs import load_handler

DAY = timedelta(days=1)


def test_the_schedule_on_a_fake_clock_rotates_each_org_once_per_period(world: World) -> None:
    actives = [world.kek_id]
    # A daily schedule with no lead, sampled around each end of period and between them.
    for day in (1, 45, 89, 90, 91, 135, 179, 180, 181, 199):
        now = FIXED_NOW + day * DAY
        report = rotate_due_orgs(world.store, world.wrapper, now=now)
        if report.rotated:
            assert day in (90, 180) and report.rotated[0].at == iso(now)
            actives.append(report.rotated[0].active_kek)
    keks = {k.kek_id: k for k in world.store.list_keks(world.org)}
    assert [keks[k].state for k in actives] == ["retired", "retired", "active"]
    # Each KEK was active from its activation to the next one's: exact, contiguous periods.
    assert keks[actives[0]].retired_at == keks[actives[1]].activated_at == iso(FIXED_NOW + 90 * DAY)
    assert (
        keks[actives[1]].retired_at == keks[actives[2]].activated_at == iso(FIXED_NOW + 180 * DAY)
    )


def test_with_a_lead_the_active_kek_never_expires_between_daily_runs(world: World) -> None:
    from kmsbridge.lifecycle.rotation import public_key_for_encryption

    for day in [*range(86, 93), *range(176, 183)]:  # daily runs around each end of period
        now = FIXED_NOW + day * DAY
        rotate_due_orgs(
            world.store, world.wrapper, now=now, lead=timedelta(hours=24), certifier=world.certifier
        )
        for h in range(0, 24, 6):  # an encryptor between two runs is never refused
            public_key_for_encryption(
                world.store, world.org, trust=world.trust, now=now + timedelta(hours=h)
            )


def test_the_lead_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSBRIDGE_ROTATION_LEAD_HOURS", raising=False)
    assert Settings.from_env().rotation_lead == timedelta(hours=24)
    monkeypatch.setenv("KMSBRIDGE_ROTATION_LEAD_HOURS", "0")
    assert Settings.from_env().rotation_lead == timedelta(0)
    for bad in ("-1", "721", "soon"):
        monkeypatch.setenv("KMSBRIDGE_ROTATION_LEAD_HOURS", bad)
        with pytest.raises(InvalidRequest):
            Settings.from_env()


def test_the_handler_rotates_what_is_due_by_the_real_clock(
    world: World, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = aws.client("kms")
    old_key, new_key = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    create_org(world.store, world.wrapper, "stale", [old_key], now=utcnow() - 91 * DAY)
    create_org(world.store, world.wrapper, "fresh", [new_key], now=utcnow())
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    handler = load_handler("rotation")
    report = handler.handler({"source": "aws.scheduler"}, None)
    rotated = {r["org"] for r in report["rotated"]}
    assert "stale" in rotated and "fresh" in report["current"]
    assert report["failed"] == []
    assert handler.handler({}, None)["rotated"] == []  # the next run has nothing to do


def test_the_handler_looks_only_at_the_orgs_it_serves(
    world: World, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    for org in ("served", "other"):
        create_org(world.store, world.wrapper, org, [key], now=utcnow() - 91 * DAY)
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    monkeypatch.setenv("KMSBRIDGE_ALLOWED_ORGS", "served, not-added-yet")
    report = load_handler("rotation").handler({}, None)
    assert [r["org"] for r in report["rotated"]] == ["served"]
    assert (report["current"], report["missing"]) == ([], ["not-added-yet"])
    assert world.store.get_org("other").version == 1  # not served: not even looked at


def test_the_handler_fails_the_invocation_when_an_org_failed(
    world: World, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    create_org(world.store, world.wrapper, "revoked", [key["Arn"]], now=utcnow() - 91 * DAY)
    kms.disable_key(KeyId=key["KeyId"])
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    with pytest.raises(InternalError, match="1 org"):
        load_handler("rotation").handler({}, None)


def test_the_access_canary_records_each_orgs_access_and_emits_the_alarm_metrics(
    world: World,
    aws: AwsClients,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    create_org(world.store, world.wrapper, "gone", [key["Arn"]], now=utcnow())
    kms.disable_key(KeyId=key["KeyId"])  # the customer revokes
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    report = load_handler("rotation").handler({"task": "access-canary"}, None)
    assert report["access"] == {world.org: "ok", "gone": "revoked"}
    assert (report["revoked"], report["unavailable"], report["unrecorded"]) == (1, 0, [])
    gone = world.store.access_checks("gone")
    assert gone["last_access_check"]["state"] == "revoked"
    assert gone["last_access_error"]["code"] == "ACCESS_REVOKED"
    assert "last_access_error" not in world.store.access_checks(world.org)
    metrics = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "OrgAccess" in x]
    assert [(m["OrgAccessRevoked"], m["OrgAccessUnavailable"]) for m in metrics] == [(1, 0)]


def test_the_rotation_function_refuses_an_unknown_task(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    with pytest.raises(InvalidRequest, match="unknown task 'dance'"):
        load_handler("rotation").handler({"task": "dance"}, None)
