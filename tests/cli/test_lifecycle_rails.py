"""Bugs 5, 6 and 10, dry runs and short KEK ids: the key-lifecycle operator's rails."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization

from kmsbridge.clock import utcnow
from tests.cli.conftest import CliOrg
from tests.cli.helpers import assert_fails, kmsbridge
from tests.conftest import REGION
from tests.legacy_pki import DAY, make_identity, rsa_key

pytestmark = pytest.mark.server


def keks(org: str = "acme") -> dict[str, str]:
    listed = kmsbridge("--output", "json", "kek", "list", org)
    assert listed.code == 0, listed.err
    return {k["kek"]: k["state"] for k in listed.json()["keks"]}


def test_bug5_activate_an_imported_key_once_its_certificate_is_valid(
    cli_org: CliOrg, tmp_path: Path
) -> None:
    later = make_identity("recorder-2027", rsa_key(20), not_before=utcnow() + 30 * DAY)
    cert, key = later.write(tmp_path, "later")
    imported = kmsbridge("--output", "json", "legacy", "import-key", "acme",
                         "--cert", cert, "--key", key)  # fmt: skip
    assert imported.code == 0, imported.err
    kek = imported.json()["kek"]
    early = kmsbridge("--output", "json", "kek", "activate", "acme", kek[:10])
    assert "not valid before" in assert_fails(early, "INVALID_REQUEST", json_output=True)
    assert keks()[kek] == "retired"

    now = make_identity("recorder-now", rsa_key(21), not_before=utcnow() - DAY)
    cert, key = now.write(tmp_path, "now")
    der = tmp_path / "now.der"  # bug 4: DER where PEM is accepted
    der.write_bytes(now.cert.public_bytes(serialization.Encoding.DER))
    imported = kmsbridge("--output", "json", "legacy", "import-key", "acme",
                         "--cert", der, "--key", key)  # fmt: skip
    assert imported.code == 0, imported.err
    valid = imported.json()["kek"]
    done = kmsbridge("--output", "json", "kek", "activate", "acme", valid[:8])
    assert done.code == 0, done.err
    assert done.json() | {"at": None} == {
        "org": "acme",
        "active_kek": valid,
        "retired_kek": cli_org.kek,
        "at": None,
    }
    states = keks()
    assert (states[valid], states[cli_org.kek]) == ("active", "retired")
    again = kmsbridge("kek", "activate", "acme", cli_org.kek)  # was active once: never again
    assert "never active" in assert_fails(again, "INVALID_REQUEST")


def test_bug6_import_missing_only(cli_org: CliOrg, tmp_path: Path) -> None:
    backup = tmp_path / "acme.json"
    assert kmsbridge("kek", "export", "acme", "-o", backup).code == 0
    assert kmsbridge("kek", "rotate", "acme").code == 0
    table = boto3.client("dynamodb", region_name=REGION)
    table.delete_item(
        TableName=cli_org.table, Key={"org": {"S": "acme"}, "kek": {"S": cli_org.kek}}
    )
    refused = kmsbridge("kek", "import", backup)
    assert "--missing-only" in assert_fails(refused, "INVALID_REQUEST")
    planned = kmsbridge("--output", "json", "kek", "import", backup, "--missing-only", "--dry-run")
    assert planned.code == 0 and planned.json()["created"] == [cli_org.kek]
    assert cli_org.kek not in keks()  # a dry run wrote nothing
    done = kmsbridge("--output", "json", "kek", "import", backup, "--missing-only")
    assert done.code == 0, done.err
    assert (done.json()["created"], done.json()["kept"]) == ([cli_org.kek], ["#org"])
    states = keks()
    assert states[cli_org.kek] == "retired"  # the org names another active KEK: one stays active
    assert list(states.values()).count("active") == 1


def test_bug10_the_refusing_key_and_operation_are_named(cli_org: CliOrg) -> None:
    kms = boto3.client("kms", region_name=REGION)
    new = kms.create_key()["KeyMetadata"]["Arn"]
    kms.disable_key(KeyId=new.rsplit("/", 1)[1])
    added = kmsbridge("org", "add", "globex", "--kms-key", new)
    message = assert_fails(added, "ACCESS_REVOKED")
    assert new in message and "to wrap a KEK" in message
    moved = kmsbridge("--output", "json", "kek", "rewrap", "acme", "--kms-key", new)
    message = assert_fails(moved, "ACCESS_REVOKED", json_output=True)
    assert new in message and "refused" in message and "unwrap" not in message


def test_dry_runs_change_nothing(cli_org: CliOrg) -> None:
    before = keks()
    rotate = kmsbridge("--output", "json", "kek", "rotate", "acme", "--dry-run")
    assert rotate.code == 0 and rotate.json()["dry_run"] is True
    new = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    rewrap = kmsbridge("--output", "json", "kek", "rewrap", "acme", "--kms-key", new, "--dry-run")
    assert rewrap.code == 0 and rewrap.json()["keks"] == [
        {"kek": cli_org.kek, "state": "active", "would": "rewrap"}
    ]
    destroy = kmsbridge("kek", "destroy", "acme", cli_org.kek, "--dry-run")
    assert "only a retired KEK" in assert_fails(destroy, "INVALID_REQUEST")
    assert kmsbridge("kek", "rotate", "acme").code == 0
    shredable = kmsbridge("kek", "destroy", "acme", cli_org.kek[:8], "--dry-run")
    assert shredable.code == 0 and "would be destroyed" in shredable.text
    states = keks()
    assert states[cli_org.kek] == "retired" and len(states) == len(before) + 1
    org = json.loads(kmsbridge("--output", "json", "org", "show", "acme").out)
    assert org["kms_keys"] == [cli_org.arn]


def test_short_kek_ids(cli_org: CliOrg) -> None:
    assert kmsbridge("kek", "rotate", "acme").code == 0
    short = kmsbridge("kek", "retire", "acme", "abc")
    assert "at least 8" in assert_fails(short, "INVALID_REQUEST")
    unknown = kmsbridge("kek", "retire", "acme", "00000000")
    assert_fails(unknown, "NOT_FOUND")
    done = kmsbridge("--output", "json", "kek", "retire", "acme", cli_org.kek[:9].upper())
    assert done.code == 0 and done.json()["kek"] == cli_org.kek
