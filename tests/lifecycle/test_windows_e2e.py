"""Revocation by period end to end, against moto's server over HTTP.

An org with three KEKs from three periods (rotations on a controlled clock: FIXED_NOW,
+90 days, +180 days) and a recording in each. The statement printed by
``kmsbridge access revoke-window`` goes into the key policy through PutKeyPolicy; once the
decryptor's maximum age has passed, the revoked period's recording fails with
ACCESS_REVOKED and the others play; removing the statement (restore-window) brings it back.
The same through the Terraform variable: the printed ``revoked_kek_ids`` value, turned into
a statement as the customer-key module does (tests/terraform/test_windows.py).
moto honours that one kind of statement through the documented fixture
(``kmsbridge.devtools.embedded.enforce_kek_deny_statements``,
tests/devtools/test_kms_policy_fixture.py).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from kmsbridge.cli.main import main
from kmsbridge.clock import iso
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import KmsBridgeError
from kmsbridge.keys.records import KekRecord
from kmsbridge.lifecycle.rotation import make_kek
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, World
from tests.terraform.hcl import module_statement
from tests.terraform.test_windows import printed_ids

pytestmark = pytest.mark.server

PERIODS = (FIXED_NOW, FIXED_NOW + timedelta(days=90), FIXED_NOW + timedelta(days=180))


def rotate(world: World, at: datetime) -> KekRecord:
    """A rotation at ``at``: a new active KEK, the previous one retired at that moment."""
    org = world.store.get_org(world.org)
    kek = make_kek(world.wrapper, org=world.org, kms_key_arns=org.kms_keys, now=at)
    world.store.activate(org, kek, iso(at))
    return kek


def record(world: World, kek: KekRecord, recording_id: str) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(recording_id.encode() * 1000),
        out,
        public_key=KekPublicKey.from_der(kek.public_key),
        org=world.org,
        recording_id=recording_id,
    )
    return out.getvalue()


def play(world: World, blob: bytes) -> str:
    """ "ok" with the recording's bytes back, else the error code."""
    out = io.BytesIO()
    try:
        decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=world.decryptor)
    except KmsBridgeError as exc:
        return exc.code
    return "ok"


def cli(
    capsys: pytest.CaptureFixture[str], world: World, endpoint: str, *argv: str, status: int = 0
) -> Any:
    code = main(
        ["--endpoint-url", endpoint, "--table", world.store.table, "--output", "json", *argv]
    )
    out, err = capsys.readouterr()
    assert code == status, err
    return json.loads(out)


def put_policy(world: World, *extra: dict[str, Any]) -> None:
    kms: Any = world.kms_client
    policy = json.loads(kms.get_key_policy(KeyId=world.key_id, PolicyName="default")["Policy"])
    statements = [s for s in policy["Statement"] if s.get("Sid") != "DenyDecryptRevokedKekPeriods"]
    policy["Statement"] = statements + list(extra)
    kms.put_key_policy(KeyId=world.key_id, PolicyName="default", Policy=json.dumps(policy))


def applied(report: dict[str, Any], through: str) -> dict[str, Any] | None:
    """The statement printed by the CLI, or the one the module makes of the printed value."""
    if through == "statement":
        statement: dict[str, Any] | None = report["statement"]
        return statement
    return module_statement(printed_ids(report["terraform"]))


@pytest.mark.parametrize("through", ["statement", "terraform"])
def test_revoke_one_period_then_restore(
    server_world: World, moto_server: str, capsys: pytest.CaptureFixture[str], through: str
) -> None:
    w = server_world
    keks = [w.store.get_kek(w.org, w.kek_id)] + [rotate(w, at) for at in PERIODS[1:]]
    blobs = [record(w, kek, f"call-{i}") for i, kek in enumerate(keks)]
    assert [play(w, b) for b in blobs] == ["ok", "ok", "ok"]  # all three KEKs now cached

    revoke = cli(
        capsys, w, moto_server, "access", "revoke-window", w.org,
        "--from", "2027-02-01", "--to", "2027-02-28",
    )  # fmt: skip
    assert revoke["kek_ids"] == [keks[1].kek_id]
    assert revoke["covered"] == [{"from": iso(PERIODS[1]), "to": iso(PERIODS[2])}]
    assert revoke["kms_keys"] == [w.key_arn]
    statement = applied(revoke, through)
    assert statement is not None
    put_policy(w, statement)

    # Within the maximum age the cached KEKs still serve; past it, KMS decides again.
    assert [play(w, b) for b in blobs] == ["ok", "ok", "ok"]
    w.clock.advance(w.decryptor.keks.max_age + 1)
    assert [play(w, b) for b in blobs] == ["ok", "ACCESS_REVOKED", "ok"]
    # The org's eviction on ACCESS_REVOKED costs the other periods one KMS call, no more.
    assert [play(w, b) for b in blobs] == ["ok", "ACCESS_REVOKED", "ok"]

    check = cli(capsys, w, moto_server, "access", "check", w.org, status=6)  # ACCESS_REVOKED
    assert check["state"] == "partly-revoked" and check["ok"] is False
    assert [k["outcome"] for k in check["keks"]] == ["ok", "ACCESS_REVOKED", "ok"]
    assert [k["kek"] for k in check["keks"]] == [k.kek_id for k in reversed(keks)]  # newest first
    assert check["kms_keys"] == [{"arn": w.key_arn, "state": "Enabled"}]

    restore = cli(
        capsys, w, moto_server, "access", "restore-window", w.org,
        "--from", "2027-02-01", "--to", "2027-02-28",
        "--revoked-kek-ids", keks[1].kek_id,
    )  # fmt: skip
    assert restore["statement_to_remove"] == revoke["statement"]
    assert restore["statement"] is None and restore["revoked_kek_ids"] == []
    assert applied(restore, through) is None
    put_policy(w)
    assert [play(w, b) for b in blobs] == ["ok", "ok", "ok"]
    assert cli(capsys, w, moto_server, "access", "check", w.org)["state"] == "ok"


def test_a_window_reaching_today_revokes_new_recordings_too(
    server_world: World, moto_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    w = server_world
    active = rotate(w, PERIODS[1])
    old, new = record(w, w.store.get_kek(w.org, w.kek_id), "old"), record(w, active, "new")
    revoke = cli(
        capsys, w, moto_server, "access", "revoke-window", w.org,
        "--from", iso(PERIODS[1] + timedelta(days=1)), "--to", iso(PERIODS[1] + timedelta(days=30)),
    )  # fmt: skip
    assert revoke["kek_ids"] == [active.kek_id] and revoke["includes_active_kek"]
    assert any("new recordings will not play" in n for n in revoke["notes"])
    put_policy(w, revoke["statement"])
    assert (play(w, old), play(w, new)) == ("ok", "ACCESS_REVOKED")
    # The next rotation: recordings made from then on play; the revoked period stays revoked.
    newest = rotate(w, PERIODS[2])
    assert (play(w, record(w, newest, "newest")), play(w, new)) == ("ok", "ACCESS_REVOKED")
