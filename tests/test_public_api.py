"""The public API and the offline encryptor's start-up: no AWS code unless AWS is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import kmsbridge
from kmsbridge.crypto.kek import KekPublicKey
from tests.cli.test_progress import write_bundle

AWS_PACKAGES = ("boto3", "botocore", "aws_encryption_sdk", "s3transfer")

PROBE = """
import json, sys
{body}
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({aws!r}))
print(json.dumps(loaded))
"""


def aws_modules_after(body: str) -> list[str]:
    code = PROBE.format(body=body, aws=AWS_PACKAGES)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_kmsbridge_imports_no_aws_sdk() -> None:
    assert aws_modules_after("import kmsbridge") == []


def test_the_offline_encryptors_names_import_no_aws_sdk() -> None:
    body = "from kmsbridge import KekPublicKey, encrypt_file, decrypt_range, read_bundle"
    assert aws_modules_after(body) == []


def test_encrypt_with_a_bundle_imports_no_aws_sdk(
    tmp_path: Path, kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey]
) -> None:
    ca_file = write_bundle(tmp_path / "bundle.json", "acme", kek_pair)
    (tmp_path / "call.wav").write_bytes(b"RIFF" + bytes(1000))
    args = [
        "encrypt", "--org", "acme", "--recording-id", "call-1",
        "--public-keys", str(tmp_path / "bundle.json"), "--ca", str(ca_file),
        str(tmp_path / "call.wav"), str(tmp_path / "call.enc"),
    ]  # fmt: skip
    body = f"from kmsbridge.cli.main import main\nassert main({args!r}) == 0"
    assert aws_modules_after(body) == []
    assert (tmp_path / "call.enc").stat().st_size > 1000


def test_every_public_name_resolves_and_unknown_names_fail() -> None:
    for name in kmsbridge.__all__:
        assert getattr(kmsbridge, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = kmsbridge.nothing  # type: ignore[attr-defined]
