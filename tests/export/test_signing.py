"""Signed manifests: KMS ECC_NIST_P384 through kms:Sign (DIGEST), checked by the real openssl."""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.errors import AccessRevoked, IntegrityError, InvalidRequest
from kmsbridge.export.archive import export_archive, pgp_target
from kmsbridge.export.job import process_export_batch, start_export_job
from kmsbridge.export.signing import ManifestSigner
from kmsbridge.export.verify import verify_archive
from tests.conftest import World
from tests.export.gnupg import GnuPG, gnupg_home, needs_gpg
from tests.legacy_pki import register

pytestmark = needs_gpg


@pytest.fixture(scope="module")
def gpg() -> Iterator[GnuPG]:
    with gnupg_home() as home:
        home.generate("Customer <customer@example.com>")
        yield home


def signing_key(world: World) -> str:
    kms: Any = world.kms_client
    meta = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return str(meta["Arn"])


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)


def signed_archive(world: World, gpg: GnuPG, tmp_path: Path, arn: str) -> Path:
    for n in range(30):  # a manifest far past KMS Sign's 4,096-byte RAW limit
        (tmp_path / f"call-{n}.enc").write_bytes(world.encrypt(b"x" * n, f"call-{n}"))
    archive = tmp_path / "signed.zip"
    export_archive(
        world.org, [tmp_path / f"call-{n}.enc" for n in range(30)], archive,
        decryptor=world.decryptor, clients=world.clients,
        target=register(world.store, world.org, pgp_target(gpg.public("customer@example.com"))),
        signer=ManifestSigner(world.clients, arn),
    )  # fmt: skip
    return archive


def test_openssl_alone_proves_the_manifest_and_every_file(
    world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    archive = signed_archive(world, gpg, tmp_path, signing_key(world))
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out)
    assert (out / "manifest.json").stat().st_size > 4096
    # The commands the README gives the customer, verbatim.
    verified = openssl(
        "dgst", "-sha384", "-verify", "manifest-signer.pem",
        "-signature", "manifest.json.sig", "manifest.json", cwd=out,
    )  # fmt: skip
    assert verified.returncode == 0 and verified.stdout.strip() == "Verified OK"
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["recordings"]:
        digest = openssl("dgst", "-sha256", "-r", entry["file"], cwd=out)
        assert digest.stdout.split()[0] == entry["file_sha256"]
    # One byte of the manifest changed: openssl and export verify both refuse.
    text = (out / "manifest.json").read_bytes()
    (out / "manifest.json").write_bytes(text.replace(b'"size": 7', b'"size": 8', 1))
    refused = openssl(
        "dgst", "-sha384", "-verify", "manifest-signer.pem",
        "-signature", "manifest.json.sig", "manifest.json", cwd=out,
    )  # fmt: skip
    assert refused.returncode == 1 and "Verification failure" in refused.stdout


def test_verify_pins_the_signer(world: World, gpg: GnuPG, tmp_path: Path) -> None:
    arn = signing_key(world)
    archive = signed_archive(world, gpg, tmp_path, arn)
    given = ManifestSigner(world.clients, arn).public_key_pem()
    report = verify_archive(archive, signer_pem=given)
    assert report["signature"] == "verified" and report["signer_pinned"]
    other = ManifestSigner(world.clients, signing_key(world)).public_key_pem()
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_archive(archive, signer_pem=other)
    # An attacker rebuilds the zip with their own manifest, signature and signer key:
    # only a pinned signer notices.
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(forged, "w") as dst:
        for name in src.namelist():
            if name != "manifest.json.sig":
                dst.writestr(name, src.read(name))
    with pytest.raises(IntegrityError, match="not signed"):
        verify_archive(forged, signer_pem=given)


def test_a_file_changed_or_added_is_caught_without_any_key(
    world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    archive = signed_archive(world, gpg, tmp_path, signing_key(world))
    with zipfile.ZipFile(archive) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    victim = next(n for n in contents if n.endswith(".pgp"))
    for case, change in {
        "changed": {victim: contents[victim][:-1] + bytes([contents[victim][-1] ^ 1])},
        "added": {"recordings/extra.pgp": b"x"},
    }.items():
        bad = tmp_path / f"{case}.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            for name, data in (contents | change).items():
                zf.writestr(name, data)
        with pytest.raises(IntegrityError):
            verify_archive(bad)


def test_a_wrong_or_disabled_signing_key_writes_nothing(
    world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    (tmp_path / "a.enc").write_bytes(world.encrypt(b"a", "a"))
    target = register(world.store, world.org, pgp_target(gpg.public("customer@example.com")))
    symmetric = world.key_arn  # the org's own key: SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT
    with pytest.raises(InvalidRequest, match="ECC_NIST_P384"):
        export_archive(
            world.org, [tmp_path / "a.enc"], tmp_path / "o.zip", decryptor=world.decryptor,
            target=target, signer=ManifestSigner(world.clients, symmetric),
        )  # fmt: skip
    arn = signing_key(world)
    world.kms_client.disable_key(KeyId=arn.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    with pytest.raises(AccessRevoked):
        export_archive(
            world.org, [tmp_path / "a.enc"], tmp_path / "o.zip", decryptor=world.decryptor,
            target=target, signer=ManifestSigner(world.clients, arn),
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.enc"]


def test_bulk_job_exports_pgp_and_signs_its_manifest(
    world: World, gpg: GnuPG, tmp_path: Path
) -> None:
    s3: Any = world.clients.client("s3")
    sqs: Any = world.clients.client("sqs")
    s3.create_bucket(Bucket="recordings")
    queue = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    plain = {f"in/c{n}.enc": bytes([n]) * (70_000 * n) for n in range(4)}
    for key, data in plain.items():
        s3.put_object(Bucket="recordings", Key=key, Body=world.encrypt(data, key))
    arn = signing_key(world)
    target = register(world.store, world.org, pgp_target(gpg.public("customer@example.com")))
    job = start_export_job(
        world.clients, store=world.store, org=world.org, source_bucket="recordings",
        keys=list(plain), dest_bucket="recordings", queue_url=queue, batch_size=3,
        signing_key=arn, target=target,
    )  # fmt: skip
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    for message in messages + messages[:1]:  # one redelivered: nothing written twice
        process_export_batch(
            json.loads(message["Body"]), clients=world.clients, decryptor=world.decryptor
        )
    folder = tmp_path / "job"
    folder.mkdir()
    for name in ("manifest.json", "manifest.json.sig", "manifest-signer.pem"):
        body = s3.get_object(Bucket=job.bucket, Key=job.prefix + name)["Body"].read()
        (folder / name).write_bytes(body)
    verified = openssl(
        "dgst", "-sha384", "-verify", "manifest-signer.pem",
        "-signature", "manifest.json.sig", "manifest.json", cwd=folder,
    )  # fmt: skip
    assert verified.stdout.strip() == "Verified OK", verified.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "pgp" and manifest["failed"] == []
    for entry in manifest["recordings"]:
        body = s3.get_object(Bucket=job.bucket, Key=entry["file"])["Body"].read()
        (folder / "x.pgp").write_bytes(body)
        assert gpg.decrypt(folder / "x.pgp") == plain[entry["source"]]
