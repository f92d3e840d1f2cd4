"""``kmsbridge access``, in process against mock_aws: output, one-line errors, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.keys.table import KeyStore
from tests.conftest import pin_platform_ca


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def org(
    aws: AwsClients,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> dict[str, Any]:
    """Org acme with its first KEK, active since now (the real clock)."""
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    assert run(capsys, "table", "create")[0] == 0
    pin_platform_ca(
        KeyStore(aws.client("dynamodb"), "kmsbridge-keks"), aws.client("kms"), tmp_path, monkeypatch
    )
    code, out, _ = run(capsys, "--output", "json", "org", "add", "acme", "--kms-key", arn)
    assert code == 0
    return {"arn": arn, **json.loads(out)}


def window(*extra: str, start: str = "2020-01-01", end: str = "2099-12-31") -> list[str]:
    return ["access", "revoke-window", "acme", "--from", start, "--to", end, *extra]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            window(start="2026-02-30"),
            "error: INVALID_REQUEST: --from '2026-02-30' is not a date: use YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM:SSZ (UTC)\n",
        ),
        (
            window(end="last march"),
            "error: INVALID_REQUEST: --to 'last march' is not a date: use YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM:SSZ (UTC)\n",
        ),
        (
            window(start="2027-05-01", end="2027-03-01"),
            "error: INVALID_REQUEST: --from 2027-05-01 is after --to 2027-03-01: "
            "the window would be empty\n",
        ),
        (
            window(start="2020-03-01", end="2020-03-31"),
            "error: INVALID_REQUEST: the window 2020-03-01T00:00:00Z to 2020-04-01T00:00:00Z "
            "covers no KEK of org 'acme': its first KEK became active on ",
        ),
        (
            window("--revoked-kek-ids", "not-a-kek"),
            "error: INVALID_REQUEST: a KEK id is 64 lowercase hex characters",
        ),
    ],
    ids=[
        "malformed-from",
        "malformed-to",
        "from-after-to",
        "no-kek",
        "bad-kek-id",
    ],
)
def test_refusals_exit_with_one_line(
    org: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    for command in ("revoke-window", "restore-window"):
        argv[1] = command
        code, out, err = run(capsys, *argv)
        assert code == exit_codes.USAGE != 0
        assert out == "" and err.startswith(message) and err.count("\n") == 1


def test_an_unknown_org_is_not_found(org: dict[str, Any], capsys: Any) -> None:
    argv = window()
    argv[2] = "nobody"
    code, _, err = run(capsys, *argv)
    assert code == exit_codes.NOT_FOUND and err.startswith("error: NOT_FOUND: org 'nobody'")


def test_no_role_is_needed_and_the_role_option_is_gone(org: dict[str, Any], capsys: Any) -> None:
    """The deny names every principal, so nothing about the platform's roles is asked."""
    code, out, _ = run(capsys, "--output", "json", *window())
    assert code == 0 and json.loads(out)["statement"]["Principal"] == {"AWS": "*"}
    code = main(window("--decryptor-role-arn", "arn:aws:iam::111122223333:role/x"))
    assert code == exit_codes.USAGE
    assert "unrecognized arguments: --decryptor-role-arn" in capsys.readouterr().err


def test_a_missing_option_is_a_usage_error(org: dict[str, Any], capsys: Any) -> None:
    assert main(["access", "revoke-window", "acme", "--from", "2026-01-01"]) == exit_codes.USAGE
    assert "--to" in capsys.readouterr().err


def test_revoke_window_text_reaching_today(
    org: dict[str, Any], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, *window())
    assert code == 0, err
    kek = org["active_kek"]
    assert "org acme: revoke playback of 1 KEK period(s)" in out
    assert f"KEK {kek}  active" in out
    assert "new recordings will not play either, until the next rotation" in out
    assert "a shorter cryptoperiod (now 90 days) gives finer revocation" in out
    assert '"Principal": {\n    "AWS": "*"\n  }' in out and '"StringEquals": {' in out
    assert f'revoked_kek_ids = [\n  "{kek}",\n]' in out
    assert f"  {org['arn']}" in out


def test_revoke_and_restore_json_are_one_object(org: dict[str, Any], capsys: Any) -> None:
    kek = org["active_kek"]
    role: list[str] = []
    code, out, _ = run(capsys, "--output", "json", *window(*role))
    revoke = json.loads(out)
    assert code == 0 and revoke["action"] == "revoke" and revoke["kek_ids"] == [kek]
    assert revoke["includes_active_kek"] is True
    assert set(revoke) >= {"asked", "covered", "keks", "statement", "terraform", "notes"}

    argv = window(*role, "--revoked-kek-ids", kek, "f" * 64)
    argv[1] = "restore-window"
    code, out, _ = run(capsys, "--output", "json", *argv)
    restore = json.loads(out)
    assert code == 0 and restore["statement_to_remove"] == revoke["statement"]
    assert restore["revoked_kek_ids"] == ["f" * 64]
    assert restore["terraform"] == f'revoked_kek_ids = [\n  "{"f" * 64}",\n]'


def test_access_check_reports_each_kek_and_key(
    org: dict[str, Any], aws: AwsClients, capsys: Any
) -> None:
    code, out, _ = run(capsys, "--output", "json", "access", "check", "acme")
    report = json.loads(out)
    assert code == 0 and report["state"] == "ok"
    assert [(k["kek"], k["state"], k["outcome"]) for k in report["keks"]] == [
        (org["active_kek"], "active", "ok")
    ]
    assert report["kms_keys"] == [{"arn": org["arn"], "state": "Enabled"}]

    aws.client("kms").disable_key(KeyId=org["arn"].rsplit("/", 1)[1])
    code, out, _ = run(capsys, "access", "check", "acme")
    assert code == exit_codes.ACCESS_REVOKED  # cron and CI alarm on it
    assert out.startswith("org acme: revoked\n")
    assert f"KEK {org['active_kek']}  active" in out and "ACCESS_REVOKED: " in out
    assert f"KMS key {org['arn']}: Disabled" in out
