"""``kmsbridge export --to-pgp`` and ``export verify`` in a subprocess against moto's server:
exit statuses, one stderr line, JSON on stdout, nothing left on disk."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.cli import exit_codes
from tests.conftest import World
from tests.export.gnupg import GnuPG, gnupg_home, needs_gpg
from tests.legacy_pki import cli, one_error_line

pytestmark = [pytest.mark.server, needs_gpg]


@pytest.fixture(scope="module")
def gpg() -> Iterator[GnuPG]:
    with gnupg_home() as home:
        home.generate("Customer <customer@example.com>")
        yield home


def keys(gpg: GnuPG, tmp_path: Path) -> tuple[Path, Path]:
    public, secret = tmp_path / "customer.asc", tmp_path / "customer-secret.asc"
    public.write_bytes(gpg.public("customer@example.com"))
    secret.write_bytes(gpg.secret("customer@example.com"))
    return public, secret


def test_export_to_pgp_signed_then_verified(
    server_world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    public, secret = keys(gpg, tmp_path)
    table = server_world.store.table
    kms: Any = server_world.kms_client
    signing = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    data = {f"call-{n}": bytes([n]) * (40_000 * n) for n in (1, 2)}
    for rid, plain in data.items():
        (tmp_path / f"{rid}.enc").write_bytes(server_world.encrypt(plain, rid))
    archive = tmp_path / "out.zip"
    registered = cli("export", "recipients", "add", server_world.org, "--pgp", str(public),
                     table=table)  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    made = cli(
        "export", server_world.org, "--to-pgp", str(public), "-o", str(archive),
        str(tmp_path / "call-1.enc"), str(tmp_path / "call-2.enc"), table=table,
        env={"KMSBRIDGE_EXPORT_SIGNING_KEY": signing["Arn"]},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "exported 2 recording(s)" in made.stdout and "(pgp)" in made.stdout
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        (tmp_path / "signer.pem").write_bytes(zf.read("manifest-signer.pem"))
        for entry in manifest["recordings"]:
            (tmp_path / "x.pgp").write_bytes(zf.read(entry["file"]))
            assert gpg.decrypt(tmp_path / "x.pgp") == data[entry["recording"]]
    assert {"manifest.json.sig", "manifest-signer.pem"} <= names
    checked = cli("export", "verify", str(archive), "--signer", str(tmp_path / "signer.pem"),
                  "--key", str(secret), table=table)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "signature verified with the given signer" in checked.stdout
    assert "plaintext: every file decrypts" in checked.stdout
    as_json = cli("--output", "json", "export", "verify", str(archive), table=table)
    report = json.loads(as_json.stdout)
    assert (report["recordings"], report["signature"], report["signer_pinned"]) == (
        2, "verified", False,
    )  # fmt: skip


def test_verify_refusals_exit_with_integrity(
    server_world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    public, _ = keys(gpg, tmp_path)
    table = server_world.store.table
    (tmp_path / "a.enc").write_bytes(server_world.encrypt(b"a" * 1000, "a"))
    archive = tmp_path / "a.zip"
    registered = cli("export", "recipients", "add", server_world.org, "--pgp", str(public),
                     table=table)  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    made = cli("export", server_world.org, "--to-pgp", str(public), "-o", str(archive),
               str(tmp_path / "a.enc"), table=table)  # fmt: skip
    assert made.returncode == 0, made.stderr
    with zipfile.ZipFile(archive) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    name = next(n for n in contents if n.endswith(".pgp"))
    contents[name] = contents[name][:-1] + bytes([contents[name][-1] ^ 1])
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        for n, body in contents.items():
            zf.writestr(n, body)
    bad = cli("export", "verify", str(tmp_path / "bad.zip"), table=table)
    assert bad.returncode == exit_codes.BY_ERROR_CODE["INTEGRITY"]
    assert "does not match its SHA-256" in one_error_line(bad, "INTEGRITY")
    not_zip = cli("export", "verify", str(tmp_path / "a.enc"), table=table)
    assert "is not a zip archive" in one_error_line(not_zip, "INVALID_REQUEST")


def test_a_secret_key_as_recipient_is_refused_and_nothing_written(
    server_world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    _, secret = keys(gpg, tmp_path)
    (tmp_path / "a.enc").write_bytes(server_world.encrypt(b"a", "a"))
    refused = cli("export", server_world.org, "--to-pgp", str(secret), "-o",
                  str(tmp_path / "o.zip"), str(tmp_path / "a.enc"),
                  table=server_world.store.table)  # fmt: skip
    assert refused.returncode == exit_codes.USAGE
    assert "holds a secret key" in one_error_line(refused, "INVALID_REQUEST")
    assert "PRIVATE KEY" not in refused.stderr + refused.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.enc",
        "customer-secret.asc",
        "customer.asc",
    ]
