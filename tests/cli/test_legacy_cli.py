"""``kmsbridge legacy`` through a subprocess against moto's server: exit codes, one-line errors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from kmsbridge.cli import exit_codes
from tests.conftest import World
from tests.legacy_pki import (
    Identity,
    cli,
    make_identity,
    one_error_line,
    rsa_key,
    smime_encrypt,
)

pytestmark = pytest.mark.server


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Identity, Path, Path]:
    ident = make_identity("recorder-2019", rsa_key(0))
    cert, _ = ident.write(tmp_path, "recorder")
    key = tmp_path / "locked.key.pem"
    key.write_bytes(ident.key_pem(password=b"p4ss word"))
    return ident, cert, key


def import_key(world: World, cert: Path, key: Path, *extra: str) -> None:
    result = cli(
        "legacy", "import-key", world.org, "--cert", str(cert), "--key", str(key),
        "--password-env", "RECORDER_KEY_PASSWORD", *extra,
        table=world.store.table, env={"RECORDER_KEY_PASSWORD": "p4ss word"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "imported KEK" in result.stdout and "(retired)" in result.stdout


def test_import_then_decrypt_a_file_and_a_zip(
    server_world: World, recorder: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    _, cert, key = recorder
    import_key(server_world, cert, key)
    data = os.urandom(50_000)
    (tmp_path / "plain").write_bytes(data)
    smime_encrypt(tmp_path / "plain", tmp_path / "a.p7m", cert)
    table = server_world.store.table
    result = cli("legacy", "decrypt", server_world.org, str(tmp_path / "a.p7m"),
                 str(tmp_path / "a.wav"), table=table)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.wav").read_bytes() == data

    with zipfile.ZipFile(tmp_path / "in.zip", "w") as zf:
        zf.write(tmp_path / "a.p7m", "calls/a.wav.p7m")
        zf.writestr("calls/broken.p7m", b"\x30\x03\x02\x01\x00")
    result = cli("legacy", "decrypt", server_world.org, str(tmp_path / "in.zip"),
                 str(tmp_path / "out"), table=table)  # fmt: skip
    assert result.returncode == exit_codes.INTEGRITY
    assert "1 of 2 files failed" in one_error_line(result, "INTEGRITY")
    assert f"ok      {tmp_path / 'in.zip'}:calls/a.wav.p7m" in result.stdout
    assert (tmp_path / "out" / "calls" / "a.wav").read_bytes() == data
    assert not (tmp_path / "out" / "calls" / "broken").exists()


def test_revoking_the_kms_key_stops_legacy_decrypt(
    server_world: World, recorder: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    _, cert, key = recorder
    import_key(server_world, cert, key)
    (tmp_path / "plain").write_bytes(b"call")
    smime_encrypt(tmp_path / "plain", tmp_path / "a.p7m", cert)
    server_world.kms_client.disable_key(KeyId=server_world.key_id)  # type: ignore[attr-defined]
    result = cli("legacy", "decrypt", server_world.org, str(tmp_path / "a.p7m"),
                 str(tmp_path / "a.wav"), table=server_world.store.table)  # fmt: skip
    assert result.returncode == exit_codes.ACCESS_REVOKED
    one_error_line(result, "ACCESS_REVOKED")
    assert not (tmp_path / "a.wav").exists()


def test_refusals_exit_non_zero_with_one_line(
    server_world: World, recorder: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    ident, cert, key = recorder
    table = server_world.store.table
    base = ("legacy", "import-key", server_world.org, "--cert", str(cert), "--key", str(key))
    wrong = cli(*base, "--password-env", "PW", table=table, env={"PW": "nope"})
    assert wrong.returncode == exit_codes.USAGE
    assert "wrong password" in one_error_line(wrong, "INVALID_REQUEST")
    unset = cli(*base, "--password-env", "NOT_SET_ANYWHERE", table=table)
    assert "is not set" in one_error_line(unset, "INVALID_REQUEST")
    no_prompt = cli(*base, table=table)  # stdin is not a terminal: no prompt, a clear error
    assert "--password-env" in one_error_line(no_prompt, "INVALID_REQUEST")

    stray_root = make_identity("Some Root", rsa_key(2), ca=True)
    (tmp_path / "ca.pem").write_bytes(stray_root.cert_pem())
    issued = make_identity("recorder-9", rsa_key(4), issuer=stray_root)
    (tmp_path / "root2.pem").write_bytes(make_identity("Some Root", rsa_key(5), ca=True).cert_pem())
    cert9, key9 = issued.write(tmp_path, "r9")
    broken = cli("legacy", "import-key", server_world.org, "--cert", str(cert9), "--key",
                 str(key9), "--ca", str(tmp_path / "root2.pem"), table=table)  # fmt: skip
    assert broken.returncode == exit_codes.INTEGRITY
    assert "does not verify" in one_error_line(broken, "INTEGRITY")

    (tmp_path / "x.p7m").write_bytes(b"not pkcs7")
    missing = cli("legacy", "decrypt", server_world.org, str(tmp_path / "x.p7m"),
                  str(tmp_path / "x"), table=table)  # fmt: skip
    assert missing.returncode == exit_codes.INTEGRITY
    one_error_line(missing, "INTEGRITY")
