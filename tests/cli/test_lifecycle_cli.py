"""``kmsbridge kek ...`` in process against mock_aws: results, confirmations, one-line errors."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.keys.table import KeyStore
from tests.conftest import pin_platform_ca


class Terminal(io.StringIO):
    """Standard input as a person at a terminal: isatty() is True."""

    def isatty(self) -> bool:
        return True


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, "--output", "json", *argv)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def org(
    aws: AwsClients,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    assert run(capsys, "table", "create")[0] == 0
    pin_platform_ca(
        KeyStore(aws.client("dynamodb"), "kmsbridge-keks"), aws.client("kms"), tmp_path, monkeypatch
    )
    made = run_json(capsys, "org", "add", "acme", "--kms-key", arn)
    (tmp_path / "call.wav").write_bytes(os.urandom(5000))
    code, _, err = run(
        capsys,
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "c1",
        str(tmp_path / "call.wav"),
        str(tmp_path / "c1.enc"),
    )
    assert code == 0, err
    return {"arn": arn, "first": made["active_kek"]}


def plays(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> bool:
    target = tmp_path / "out.wav"
    target.unlink(missing_ok=True)
    code, _, _ = run(capsys, "decrypt", "--org", "acme", str(tmp_path / "c1.enc"), str(target))
    return code == 0 and target.read_bytes() == (tmp_path / "call.wav").read_bytes()


def test_list_rotate_retire_and_list_again(org: dict[str, Any], capsys: Any) -> None:
    listed = run_json(capsys, "kek", "list", "acme")
    assert listed["active_kek"] == org["first"]
    (kek,) = listed["keks"]
    assert (kek["state"], kek["kms_key_usable"], kek["kms_keys"]) == ("active", True, [org["arn"]])
    assert 0 < kek["days_left"] <= 90
    assert listed["key_status"] == [{"arn": org["arn"], "state": "Enabled", "usable": True}]

    rotated = run_json(capsys, "kek", "rotate", "acme")
    assert rotated["retired_kek"] == org["first"]
    code, out, _ = run(capsys, "kek", "list", "acme")
    assert code == 0 and out.count("\n") == 6 and "retired" in out and "Enabled" in out
    assert out.count(f"      under {org['arn']}") == 2  # each KEK's KMS keys
    code, _, err = run(capsys, "kek", "retire", "acme", rotated["active_kek"])
    assert code == exit_codes.USAGE and "kek rotate acme" in err
    assert run_json(capsys, "kek", "retire", "acme", org["first"])["state"] == "retired"


def test_destroy_needs_the_id_typed_back(
    org: dict[str, Any], capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = org["first"]
    assert run(capsys, "kek", "rotate", "acme")[0] == 0
    code, _, err = run(capsys, "kek", "destroy", "acme", first)  # stdin is not a terminal
    assert code == exit_codes.USAGE and err.startswith("error: INVALID_REQUEST: ")
    assert "--confirm" in err and err.count("\n") == 1
    code, _, err = run(capsys, "kek", "destroy", "acme", first, "--confirm", first[:12])
    assert code == exit_codes.USAGE
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    assert run(capsys, "kek", "destroy", "acme", first)[0] == exit_codes.USAGE
    assert plays(capsys, tmp_path)  # nothing was destroyed

    monkeypatch.setattr("sys.stdin", Terminal(first + "\n"))
    code, out, err = run(capsys, "--output", "json", "kek", "destroy", "acme", first)
    assert code == 0 and "Type the KEK id" in err
    tomb = json.loads(out)
    assert tomb["state"] == "destroyed"
    assert tomb["destroyed_by"] == "arn:aws:sts::123456789012:user/moto"  # moto's STS identity
    code, _, err = run(
        capsys, "decrypt", "--org", "acme", str(tmp_path / "c1.enc"), str(tmp_path / "o")
    )
    assert code == exit_codes.NOT_FOUND and "destroyed on purpose" in err
    assert not (tmp_path / "o").exists()


def test_destroy_with_the_confirm_flag(org: dict[str, Any], capsys: Any, tmp_path: Path) -> None:
    first = org["first"]
    code, _, err = run(capsys, "kek", "destroy", "acme", first, "--confirm", first)
    assert code == exit_codes.USAGE and "only a retired KEK" in err  # still active
    run(capsys, "kek", "rotate", "acme")
    assert run(capsys, "kek", "destroy", "acme", first, "--confirm", first)[0] == 0
    assert not plays(capsys, tmp_path)
    listed = run_json(capsys, "kek", "list", "acme")
    tomb = next(k for k in listed["keks"] if k["kek"] == first)
    assert tomb["state"] == "destroyed" and tomb["destroyed_at"] and tomb["destroyed_by"]


def test_rewrap_then_the_old_key_can_go(
    org: dict[str, Any], aws: AwsClients, capsys: Any, tmp_path: Path
) -> None:
    run(capsys, "kek", "rotate", "acme")
    new = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    code, out, err = run(capsys, "kek", "rewrap", "acme", "--kms-key", new)
    assert code == 0 and "2 KEK(s) rewrapped" in out
    assert err == ""  # progress goes to a terminal only
    again = run_json(capsys, "kek", "rewrap", "acme", "--kms-key", new)
    assert (again["rewrapped"], again["already"]) == (0, 2)
    aws.client("kms").disable_key(KeyId=org["arn"].rsplit("/", 1)[1])
    assert plays(capsys, tmp_path)
    listed = run_json(capsys, "kek", "list", "acme")
    assert listed["kms_keys"] == [new]


def test_rewrap_shows_progress_on_a_terminal(
    org: dict[str, Any], aws: AwsClients, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "kek", "rotate", "acme")
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    new = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    assert main(["kek", "rewrap", "acme", "--kms-key", new]) == 0
    shown = terminal.getvalue()
    assert "[1/2] KEK " in shown and "[2/2] KEK " in shown and "rewrapped" in shown


def test_rewrap_all_orgs_selects_by_old_key_and_queues_jobs(
    org: dict[str, Any], aws: AwsClients, capsys: Any
) -> None:
    other = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    run(capsys, "org", "add", "globex", "--kms-key", other)
    new = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    code, _, err = run(capsys, "kek", "rewrap", "--all-orgs", "--kms-key", new)
    assert code == exit_codes.USAGE and "--from-kms-key" in err
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    queued = run_json(
        capsys,
        "kek",
        "rewrap",
        "--all-orgs",
        "--from-kms-key",
        org["arn"],
        "--kms-key",
        new,
        "--queue-url",
        url,
    )
    assert queued == {"orgs": ["acme"], "queued": 1}
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == {"type": "rewrap", "org": "acme"}  # names no key
    done = run_json(
        capsys, "kek", "rewrap", "--all-orgs", "--from-kms-key", other, "--kms-key", new
    )
    assert done["orgs"] == ["globex"]
    assert run_json(capsys, "kek", "list", "globex")["kms_keys"] == [new]
    acme = run_json(capsys, "kek", "list", "acme")  # registered by the operator, then queued
    assert acme["kms_keys"] == [new] and [k["kms_keys"] for k in acme["keks"]] == [[org["arn"]]]


def test_export_wipe_import(
    org: dict[str, Any], aws: AwsClients, capsys: Any, tmp_path: Path
) -> None:
    from kmsbridge.keys.table import KeyStore

    backup = tmp_path / "acme.json"
    exported = run_json(capsys, "kek", "export", "acme", "-o", str(backup))
    assert exported["keks"] == 1 and exported["checksum"].startswith("sha256:")
    KeyStore(aws.client("dynamodb"), "kmsbridge-keks").delete_org_items("acme")
    assert not plays(capsys, tmp_path)
    code, _, err = run(capsys, "kek", "import", str(backup))  # the org's keys are not named
    assert code == exit_codes.USAGE and "--kms-key" in err
    restored = run_json(capsys, "kek", "import", str(backup), "--kms-key", org["arn"])
    assert restored["created"] == [org["first"], "#org"]
    assert plays(capsys, tmp_path)
    assert run_json(capsys, "kek", "import", str(backup))["created"] == []
    backup.write_text(backup.read_text().replace('"acme"', '"acmf"'))
    code, _, err = run(capsys, "kek", "import", str(backup))
    assert code == exit_codes.USAGE and "checksum" in err


FAILURES = [
    (["kek", "list", "nobody"], exit_codes.NOT_FOUND),
    (["kek", "rotate", "bad org"], exit_codes.USAGE),
    (["kek", "retire", "acme", "abc"], exit_codes.USAGE),
    (["kek", "retire", "acme", "f" * 64], exit_codes.NOT_FOUND),
    (["kek", "rewrap", "acme", "--kms-key", "alias/new"], exit_codes.USAGE),
    (["kek", "rewrap", "--kms-key", "arn:aws:kms:us-east-1:1:key/x"], exit_codes.USAGE),
    (["kek", "import", "/no/such/backup.json"], exit_codes.NOT_FOUND),
]


def test_failures_are_one_line_and_a_named_exit(org: dict[str, Any], capsys: Any) -> None:
    for argv, status in FAILURES:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (status, ""), argv
        assert err.startswith("error: ") and err.count("\n") == 1, argv
