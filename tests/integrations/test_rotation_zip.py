"""Issuing KEK certificates as the rotation Lambda runs it: pyasn1 in rotation.zip only, and a
certificate built from the unpacked zip in an interpreter that sees nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kmsbridge.integrations.aws_lambda.build import build, host_arch

pytestmark = pytest.mark.slow

CODE = """
from datetime import UTC, datetime, timedelta
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kmsbridge.crypto.certificates import build_ca_certificate
key = ec.generate_private_key(ec.SECP384R1())
spki = key.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
now = datetime.now(UTC)
ca = build_ca_certificate(spki, name="zip CA", not_before=now, not_after=now + timedelta(1),
                          sign=lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA384())))
print(ca.subject.rfc4514_string())
"""


def test_rotation_zip_carries_pyasn1_and_issues_from_it(tmp_path: Path) -> None:
    # Built for this machine's Python so that it runs here (compiled wheels are per version).
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = {b.name: b.path for b in build(tmp_path / "dist", host_arch(), python_version=here)}
    with zipfile.ZipFile(built["rotation"]) as zf:
        names = zf.namelist()
        assert any(n.startswith("pyasn1/") for n in names)
        assert any(n.startswith("pyasn1_modules/") for n in names)
        zf.extractall(tmp_path / "task")
    for name in ("decryptor", "jobs"):
        with zipfile.ZipFile(built[name]) as zf:
            assert not any(n.startswith("pyasn1") for n in zf.namelist()), name
    # No site-packages, no PYTHONPATH but the task folder: what Lambda's /var/task gives.
    run = subprocess.run(
        [sys._base_executable, "-S", "-s", "-c", CODE],  # type: ignore[attr-defined]
        cwd=tmp_path / "task",
        env={"PYTHONPATH": str(tmp_path / "task")},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "CN=zip CA,O=kmsbridge platform"
