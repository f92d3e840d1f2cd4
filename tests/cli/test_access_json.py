"""Bugs 7, 8 and 11 and org management: access check's status, JSON failures, one vocabulary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from kmsbridge.cli import exit_codes
from tests.cli.conftest import CliOrg
from tests.cli.helpers import assert_fails, kmsbridge, leftovers
from tests.conftest import REGION

pytestmark = pytest.mark.server


def test_bug7_access_check_exits_non_zero_unless_every_live_kek_unwraps(cli_org: CliOrg) -> None:
    ok = kmsbridge("--output", "json", "access", "check", "acme")
    assert ok.code == 0 and ok.json()["state"] == "ok" and ok.err == ""
    boto3.client("kms", region_name=REGION).disable_key(KeyId=cli_org.arn.rsplit("/", 1)[1])
    revoked = kmsbridge("access", "check", "acme")
    message = assert_fails(revoked, "ACCESS_REVOKED")
    assert "revoked" in message and "0 of 1 live KEK(s) unwrap" in message
    assert revoked.text.startswith("org acme: revoked\n")  # the report, still on stdout
    as_json = kmsbridge("--output", "json", "access", "check", "acme")
    assert_fails(as_json, "ACCESS_REVOKED", json_output=True)
    body = as_json.json()  # one object: the report and the error together
    assert body["state"] == "revoked" and body["keks"][0]["outcome"] == "ACCESS_REVOKED"
    # org show remembers the last failed check (bug: "last access error")
    shown = kmsbridge("--output", "json", "org", "show", "acme").json()
    assert shown["last_access_error"]["code"] == "ACCESS_REVOKED"
    assert shown["last_access_error"]["kek"] == cli_org.kek  # full ids in JSON


def test_bug8_json_errors_on_stdout_with_the_same_status(cli_org: CliOrg, tmp_path: Path) -> None:
    usage = kmsbridge("--output", "json", "encrypt", "--org", "acme")
    assert "required" in assert_fails(usage, "INVALID_REQUEST", json_output=True)
    missing = kmsbridge("kek", "retire", "acme", "ab" * 32, "--output=json")
    message = assert_fails(missing, "NOT_FOUND", json_output=True)
    assert "ab" * 32 in message and "…" not in message  # the full id, never shortened
    text = kmsbridge("kek", "retire", "acme", "ab" * 32)
    assert_fails(text, "NOT_FOUND")  # text mode: nothing on stdout
    assert text.out == b""


def test_bug8_one_shape_for_per_file_results(cli_org: CliOrg, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.wav").write_bytes(b"a")
    enc = kmsbridge("encrypt", "--org", "acme", tmp_path / "in", tmp_path / "enc")
    assert enc.code == 0 and "(1 byte)" in enc.text  # bug 11: not "(1 bytes)"
    (tmp_path / "enc" / "broken.wav.enc").write_bytes(b"not a recording")
    dec = kmsbridge("--output", "json", "decrypt", "--org", "acme", tmp_path / "enc",
                    tmp_path / "out")  # fmt: skip
    assert_fails(dec, "INTEGRITY", json_output=True)
    body = dec.json()
    assert (body["ok"], body["failed"]) == (False, 1)
    shapes = {tuple(sorted(f)) for f in body["files"]}
    assert shapes == {("bytes", "error", "kek", "ok", "recording", "skipped", "source", "target")}
    good = next(f for f in body["files"] if f["ok"])
    assert good["kek"] == cli_org.kek and good["recording"] == "a.wav"
    assert leftovers(tmp_path) == []


def test_bug11_destroyed_is_a_state_and_one_order(cli_org: CliOrg) -> None:
    first = cli_org.kek
    assert kmsbridge("kek", "rotate", "acme").code == 0
    assert kmsbridge("kek", "rotate", "acme").code == 0
    assert kmsbridge("kek", "retire", "acme", first).code == 0
    assert kmsbridge("kek", "destroy", "acme", first, "--confirm", first).code == 0
    check = kmsbridge("--output", "json", "access", "check", "acme")
    assert check.code == 0, check.err
    listed = kmsbridge("--output", "json", "kek", "list", "acme").json()
    outcomes = {k["kek"]: k["outcome"] for k in check.json()["keks"]}
    assert outcomes[first] == "destroyed"  # a state, not an error code
    assert [k["kek"] for k in check.json()["keks"]] == [k["kek"] for k in listed["keks"]]
    assert listed["keks"][-1]["kek"] == first  # newest first in both
    text = kmsbridge("kek", "list", "acme").text
    assert text.count(f"under {cli_org.arn}") == 3  # each KEK's KMS keys (bug 11)


def test_org_list_show_set(cli_org: CliOrg) -> None:
    listed = kmsbridge("--output", "json", "org", "list")
    assert [o["org"] for o in listed.json()["orgs"]] == ["acme"]
    changed = kmsbridge("--output", "json", "org", "set", "acme", "--cryptoperiod-days", "30")
    assert changed.code == 0 and changed.json()["previous_cryptoperiod_days"] == 90
    shown = kmsbridge("org", "show", "acme")
    assert shown.code == 0 and "30 days" in shown.text and cli_org.arn in shown.text
    assert "none recorded" in shown.text
    bad = kmsbridge("org", "set", "acme", "--cryptoperiod-days", "0")
    assert "cryptoperiod" in assert_fails(bad, "INVALID_REQUEST")
    nobody = kmsbridge("--output", "json", "org", "show", "nobody")
    assert_fails(nobody, "NOT_FOUND", json_output=True)
    assert json.loads(nobody.out)["ok"] is False
    assert os.environ.get("KMSBRIDGE_TABLE") == cli_org.table
    assert nobody.code == exit_codes.NOT_FOUND
