"""The PGP target as the jobs Lambda runs it: pysequoia in jobs.zip only, and the
encrypting child started from the unpacked zip in an interpreter that sees nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kmsbridge.integrations.aws_lambda.build import build, host_arch
from tests.export.gnupg import gnupg_home, needs_gpg

pytestmark = [needs_gpg, pytest.mark.slow]

CODE = """
import sys
from pathlib import Path
from kmsbridge.export.pgp import encrypt_to_file, pgp_recipient
folder = Path(sys.argv[1])
recipient = pgp_recipient((folder / "customer.asc").read_bytes())
(folder / "recipient.pgp").write_bytes(recipient.certificate)
encrypt_to_file(folder / "recipient.pgp", folder / "out.pgp",
                lambda pipe: pipe.write((folder / "plain").read_bytes()))
"""


def test_jobs_zip_carries_pysequoia_and_encrypts_from_it(tmp_path: Path) -> None:
    # Wheels for this interpreter (the runtime's python3.13 wheels are checked by
    # tests/integrations/test_lambda_wheels.py): the zip must run here.
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = {b.name: b.path for b in build(tmp_path / "dist", host_arch(), python_version=here)}
    with zipfile.ZipFile(built["jobs"]) as zf:
        assert any(n.startswith("pysequoia/") for n in zf.namelist())
        zf.extractall(tmp_path / "task")
    for name in ("decryptor", "rotation"):
        with zipfile.ZipFile(built[name]) as zf:
            assert not any(n.startswith("pysequoia") for n in zf.namelist()), name
    with gnupg_home() as gpg:
        fingerprint = gpg.generate("Customer <customer@example.com>")
        (tmp_path / "customer.asc").write_bytes(gpg.public(fingerprint))
        (tmp_path / "plain").write_bytes(b"recording " * 10_000)
        # No site-packages, no PYTHONPATH but the task folder: what Lambda's /var/task gives.
        run = subprocess.run(
            [sys._base_executable, "-S", "-s", "-c", CODE, str(tmp_path)],  # type: ignore[attr-defined]
            cwd=tmp_path / "task",
            env={"PYTHONPATH": str(tmp_path / "task")},
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        assert gpg.decrypt(tmp_path / "out.pgp") == (tmp_path / "plain").read_bytes()
