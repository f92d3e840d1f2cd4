"""The first commands, in process against mock_aws: results, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

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
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    assert run(capsys, "table", "create")[0] == 0
    pin_platform_ca(
        KeyStore(aws.client("dynamodb"), "kmsbridge-keks"), aws.client("kms"), tmp_path, monkeypatch
    )
    code, out, _ = run(capsys, "--output", "json", "org", "add", "acme", "--kms-key", arn)
    assert code == 0
    return {"arn": arn, **json.loads(out)}


def test_org_add_encrypt_decrypt(org: dict[str, Any], capsys: Any, tmp_path: Path) -> None:
    assert org["org"] == "acme" and len(org["active_kek"]) == 64
    data = os.urandom(70_000)
    (tmp_path / "in.wav").write_bytes(data)
    code, out, _ = run(
        capsys,
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "c1",
        "--metadata",
        "kmsbridge:media=audio/wav",
        str(tmp_path / "in.wav"),
        str(tmp_path / "c1.enc"),
    )
    assert code == 0 and org["active_kek"] in out
    code, out, _ = run(
        capsys,
        "decrypt",
        "--org",
        "acme",
        str(tmp_path / "c1.enc"),
        str(tmp_path / "out.wav"),
        "--output",
        "json",
    )
    assert code == 0 and json.loads(out)["bytes"] == len(data)
    assert (tmp_path / "out.wav").read_bytes() == data


def test_encrypt_from_a_bundle_needs_no_aws(
    org: dict[str, Any], capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    assert run(capsys, "keys", "public", "acme", "-o", str(bundle))[0] == 0
    kek_certificate = x509.load_pem_x509_certificates(bundle.read_bytes())[0]
    ski = kek_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value.digest.hex() == org["active_kek"]
    (tmp_path / "in").write_bytes(b"abc")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # AWS unreachable now
    code, _, err = run(
        capsys,
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "c2",
        "--public-keys",
        str(bundle),
        str(tmp_path / "in"),
        str(tmp_path / "o"),
    )
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("argv", "status", "code"),
    [
        (["decrypt", "--org", "globex", "{enc}", "{out}"], exit_codes.WRONG_ORG, "WRONG_ORG"),
        (["decrypt", "--org", "acme", "{missing}", "{out}"], exit_codes.NOT_FOUND, "NOT_FOUND"),
        (
            ["encrypt", "--org", "bad org", "--recording-id", "r", "{plain}", "{out}"],
            exit_codes.USAGE,
            "INVALID_REQUEST",
        ),
        (["keys", "public", "nobody", "-o", "{out}"], exit_codes.NOT_FOUND, "NOT_FOUND"),
        (["decrypt", "--org", "acme", "{plain}", "{out}"], exit_codes.INTEGRITY, "INTEGRITY"),
    ],
)
def test_failures_are_one_line_and_a_named_exit(
    org: dict[str, Any], capsys: Any, tmp_path: Path, argv: list[str], status: int, code: str
) -> None:
    (tmp_path / "plain").write_bytes(b"not a recording at all")
    assert (
        run(
            capsys,
            "encrypt",
            "--org",
            "acme",
            "--recording-id",
            "r",
            str(tmp_path / "plain"),
            str(tmp_path / "enc"),
        )[0]
        == 0
    )
    paths = {
        "enc": tmp_path / "enc",
        "out": tmp_path / "out",
        "missing": tmp_path / "missing",
        "plain": tmp_path / "plain",
    }
    result, out, err = run(capsys, *[a.format(**paths) for a in argv])
    assert result == status
    assert err.startswith(f"error: {code}: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_revoked_key_exits_with_access_revoked(
    org: dict[str, Any], aws: AwsClients, capsys: Any, tmp_path: Path
) -> None:
    (tmp_path / "in").write_bytes(b"abc")
    run(
        capsys,
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "r",
        str(tmp_path / "in"),
        str(tmp_path / "enc"),
    )
    aws.client("kms").disable_key(KeyId=org["arn"].rsplit("/", 1)[1])
    code, _, err = run(
        capsys, "decrypt", "--org", "acme", str(tmp_path / "enc"), str(tmp_path / "out")
    )
    assert code == exit_codes.ACCESS_REVOKED and err.startswith("error: ACCESS_REVOKED: ")


def test_org_add_twice_is_refused(org: dict[str, Any], capsys: Any) -> None:
    code, _, err = run(capsys, "org", "add", "acme", "--kms-key", org["arn"])
    assert code == exit_codes.USAGE and "already exists" in err
