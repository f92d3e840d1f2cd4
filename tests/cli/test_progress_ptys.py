"""The new progress bars, each drawn on a terminal (a pty) and absent in a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

from tests.cli.conftest import CliOrg
from tests.conftest import REGION, World
from tests.legacy_pki import make_identity, rsa_key, smime_encrypt

pytestmark = pytest.mark.server


def register(org: str, cert: Path, table: str) -> None:
    """Export goes only to a recipient registered for the org (issue 15)."""
    added = piped("export", "recipients", "add", org, "--cert", cert, table=table)
    assert added.returncode == 0, added.stderr


def on_a_tty(*argv: str | Path, table: str, timeout: float = 120) -> tuple[int, bytes, bytes]:
    """Run kmsbridge with stderr on a pty: exit status, stdout, what the terminal showed."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kmsbridge.cli.main", *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "KMSBRIDGE_TABLE": table},
            timeout=timeout,
            check=False,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the writer side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    return done.returncode, done.stdout, seen


def piped(*argv: str | Path, table: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *map(str, argv)],
        capture_output=True, env={**os.environ, "KMSBRIDGE_TABLE": table}, timeout=120,
        check=False,
    )  # fmt: skip


def test_export_archive_bar(server_world: World, tmp_path: Path) -> None:
    cert, _ = make_identity("customer", rsa_key(40)).write(tmp_path, "customer")
    register(server_world.org, cert, server_world.store.table)
    files = []
    for n in range(3):
        files.append(tmp_path / f"c{n}.enc")
        files[-1].write_bytes(server_world.encrypt(b"x" * 100, f"c{n}"))
    argv = ["export", server_world.org, "--to-cert", cert, "--force"]
    code, _, seen = on_a_tty(
        *argv, "-o", tmp_path / "a.zip", *files, table=server_world.store.table
    )
    assert code == 0 and b"exported [" in seen and b"3/3" in seen
    quiet = piped(*argv, "-o", tmp_path / "b.zip", *files, table=server_world.store.table)
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_legacy_zip_bar(server_world: World, tmp_path: Path) -> None:
    cert, key = make_identity("recorder", rsa_key(41)).write(tmp_path, "recorder")
    table = server_world.store.table
    assert piped("legacy", "import-key", server_world.org, "--cert", cert, "--key", key,
                 table=table).returncode == 0  # fmt: skip
    (tmp_path / "p").write_bytes(b"call")
    smime_encrypt(tmp_path / "p", tmp_path / "a.p7m", cert)
    with zipfile.ZipFile(tmp_path / "in.zip", "w") as zf:
        for n in range(2):
            zf.write(tmp_path / "a.p7m", f"calls/{n}.p7m")
    code, out, seen = on_a_tty("legacy", "decrypt", server_world.org, tmp_path / "in.zip",
                               tmp_path / "out", table=table)  # fmt: skip
    assert code == 0 and b"decrypted [" in seen and b"2/2" in seen
    assert out.count(b"ok      ") == 2


def test_s3_listing_bar(cli_org: CliOrg, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"list-{cli_org.table}"
    s3.create_bucket(Bucket=bucket)
    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"in/{n}.enc", Body=b"x")
    cert, _ = make_identity("customer", rsa_key(42)).write(tmp_path, "customer")
    register(cli_org.name, cert, cli_org.table)
    argv = ["export", "start", "acme", "--source-bucket", bucket, "--source-prefix", "in/",
            "--dest-bucket", bucket, "--queue-url", "http://unused", "--to-cert", cert,
            "--dry-run"]  # fmt: skip
    code, out, seen = on_a_tty(*argv, table=cli_org.table)
    assert code == 0 and b"would export 3 recording(s)" in out
    assert f"listing s3://{bucket}/in/ [".encode() in seen and b"3/3 in/2.enc" in seen
    assert piped(*argv, table=cli_org.table).stderr == b""


def test_lambda_build_bar(tmp_path: Path) -> None:
    code, out, seen = on_a_tty("lambda", "build", "-o", tmp_path, table="unused", timeout=600)
    assert code == 0, seen[-500:]
    assert b"building [" in seen and b"decryptor.zip" in seen
    assert b"decryptor.zip" in out and (tmp_path / "decryptor.zip").is_file()
