"""The PGP export target against the real gpg binary: recipients, archives, streaming."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.export.archive import ExportTarget, export_archive, pgp_target
from kmsbridge.export.verify import verify_archive
from tests.conftest import World
from tests.export.gnupg import GnuPG, gnupg_home, needs_gpg
from tests.legacy_pki import register

pytestmark = needs_gpg


@pytest.fixture(scope="module")
def gpg() -> Iterator[GnuPG]:
    with gnupg_home() as home:
        yield home


@pytest.fixture(scope="module")
def customer(gpg: GnuPG) -> str:
    return gpg.generate("Customer <customer@example.com>")


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary folders go here, so a test can see that none is left behind."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def registered(world: World, gpg: GnuPG, customer: str) -> ExportTarget:
    """The customer's key as a target, registered for the org first (issue 15 finding 3)."""
    return register(world.store, world.org, pgp_target(gpg.public(customer)))


def test_a_recipient_is_one_live_public_key(gpg: GnuPG, customer: str) -> None:
    target = pgp_target(gpg.public(customer))
    assert target.pgp is not None and target.pgp.fingerprint == customer.lower()
    assert target.describe() == {"format": "pgp", "pgp_fingerprint": customer.lower()}
    rsa = gpg.generate("RSA <rsa@example.com>", "rsa3072")  # sign-only until the subkey
    gpg.add_encryption_subkey(rsa, "rsa3072")
    assert pgp_target(gpg.public(rsa)).suffix == ".pgp"


@pytest.mark.parametrize("case", ["secret", "two", "garbage", "empty"])
def test_recipient_files_that_are_not_one_public_key_are_refused(
    gpg: GnuPG, customer: str, case: str
) -> None:
    other = gpg.generate(f"Other {case} <other-{case}@example.com>")
    data = {
        "secret": gpg.secret(customer),
        "two": gpg.public(customer) + gpg.public(other),
        "garbage": b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n",
        "empty": b"",
    }[case]
    with pytest.raises(InvalidRequest) as refused:
        pgp_target(data)
    assert "BEGIN" not in refused.value.message  # never quotes the file


def test_revoked_expired_and_sign_only_keys_are_refused(gpg: GnuPG) -> None:
    revoked = gpg.generate("Revoked <revoked@example.com>")
    gpg.revoke(revoked)
    with pytest.raises(InvalidRequest, match="is revoked"):
        pgp_target(gpg.public(revoked))
    expired = gpg.generate("Expired <expired@example.com>", expire="1d", at="20200101T000000")
    with pytest.raises(InvalidRequest, match="expired on 2020-01-02"):
        pgp_target(gpg.public(expired))
    sign_only = gpg.generate("SignOnly <sign-only@example.com>", "rsa3072")
    with pytest.raises(InvalidRequest, match="no live encryption subkey"):
        pgp_target(gpg.public(sign_only))
    # A live primary whose only encryption subkey expired: pysequoia alone would use it.
    stale = gpg.generate("Stale <stale@example.com>", "ed25519", at="20200101T000000")
    gpg.add_encryption_subkey(stale, "cv25519", expire="1d", at="20200101T000000")
    with pytest.raises(InvalidRequest, match="no live encryption subkey"):
        pgp_target(gpg.public(stale))


def test_archive_decrypts_with_gpg_and_verifies(
    world: World, gpg: GnuPG, customer: str, tmp_path: Path, spool: Path
) -> None:
    data = {"call-1": os.urandom(5000), "call-2": os.urandom(300_000), "empty": b""}
    sources = []
    for rid, plain in data.items():
        (tmp_path / f"{rid}.enc").write_bytes(world.encrypt(plain, rid))
        sources.append(tmp_path / f"{rid}.enc")
    archive = tmp_path / "out.zip"
    manifest = export_archive(
        world.org, sources, archive, decryptor=world.decryptor,
        target=registered(world, gpg, customer), clients=world.clients,
    )  # fmt: skip
    assert manifest["format"] == "pgp" and manifest["pgp_fingerprint"] == customer.lower()
    with zipfile.ZipFile(archive) as zf:
        for entry in manifest["recordings"]:
            body = zf.read(entry["file"])
            assert entry["file"].endswith(".pgp")
            assert hashlib.sha256(body).hexdigest() == entry["file_sha256"]
            (tmp_path / "x.pgp").write_bytes(body)
            plain = gpg.decrypt(tmp_path / "x.pgp")
            assert plain == data[entry["recording"]]
            assert hashlib.sha256(plain).hexdigest() == entry["sha256"]
    assert list(spool.iterdir()) == []  # the ciphertext spool is gone
    report = verify_archive(archive, key=gpg.secret(customer))
    assert report["plaintext_checked"] and report["recordings"] == 3
    assert report["signature"] == "absent"


def test_a_failure_mid_stream_publishes_nothing(
    world: World, gpg: GnuPG, customer: str, tmp_path: Path, spool: Path
) -> None:
    good = world.encrypt(os.urandom(200_000), "good")
    bad = bytearray(world.encrypt(os.urandom(200_000), "bad"))
    bad[-40] ^= 0x01  # the last frame: earlier frames went into the pipe already
    (tmp_path / "good.enc").write_bytes(good)
    (tmp_path / "bad.enc").write_bytes(bytes(bad))
    with pytest.raises(IntegrityError):
        export_archive(
            world.org, [tmp_path / "good.enc", tmp_path / "bad.enc"], tmp_path / "out.zip",
            decryptor=world.decryptor, target=registered(world, gpg, customer),
        )  # fmt: skip
    assert not (tmp_path / "out.zip").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.enc", "good.enc", "spool"]
    assert list(spool.iterdir()) == []


def test_pgp_export_memory_stays_bounded(
    world: World, gpg: GnuPG, customer: str, tmp_path: Path, spool: Path
) -> None:
    size = 24 * 1024 * 1024
    (tmp_path / "big.enc").write_bytes(world.encrypt(os.urandom(size), "big"))
    tracemalloc.start()
    try:
        export_archive(
            world.org, [tmp_path / "big.enc"], tmp_path / "out.zip",
            decryptor=world.decryptor, target=registered(world, gpg, customer),
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Frames stream through the pipe: Python holds a few frames and copy buffers, never
    # the recording (the certificate target holds all 24 MiB, and more).
    assert peak < 8 * 1024 * 1024, peak
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["recordings"][0]["size"] == size
