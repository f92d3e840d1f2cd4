"""Export to a certificate (read back by openssl) or a KMS key (read back by the official ESDK)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import aws_encryption_sdk
import boto3
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy

from kmsbridge.errors import AccessRevoked, InvalidRequest
from kmsbridge.export.archive import (
    Exporter,
    certificate_target,
    entry_name,
    export_archive,
    kms_target,
)
from kmsbridge.legacy.import_key import import_key_pair
from tests.conftest import FIXED_NOW, REGION, World
from tests.legacy_pki import (
    DAY,
    Identity,
    make_identity,
    register,
    rsa_key,
    smime_decrypt,
    smime_encrypt,
)


@pytest.fixture
def customer(tmp_path: Path) -> tuple[Identity, Path, Path]:
    ident = make_identity("customer-archive", rsa_key(10))
    cert, key = ident.write(tmp_path, "customer")
    return ident, cert, key


def recordings(world: World, tmp_path: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    """kmsbridge recordings on disk, as ``<n>.enc`` in the order given."""
    out = {}
    for n, (rid, size) in enumerate(sizes.items()):
        data = os.urandom(size)
        (tmp_path / f"{n}.enc").write_bytes(world.encrypt(data, rid))
        out[rid] = data
    return out


def test_export_to_a_certificate_decrypts_with_openssl_byte_for_byte(
    world: World, customer: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    ident, cert, key = customer
    plain = recordings(world, tmp_path, {"call-1": 0, "call-2": 70_001, "call 3/ü": 200_000})
    manifest = export_archive(
        world.org,
        [tmp_path / f"{n}.enc" for n in range(3)],
        tmp_path / "out.zip",
        decryptor=world.decryptor,
        target=register(world.store, world.org, certificate_target(ident.cert_pem(), FIXED_NOW)),
    )
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert json.loads(zf.read("manifest.json")) == manifest
        for entry in manifest["recordings"]:
            (tmp_path / "x.p7m").write_bytes(zf.read(entry["file"]))
            smime_decrypt(tmp_path / "x.p7m", tmp_path / "x.out", cert, key)
            data = (tmp_path / "x.out").read_bytes()
            assert data == plain[entry["recording"]]
            assert entry["size"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert [e["file"] for e in manifest["recordings"]] == [
        "recordings/call-1.p7m",
        "recordings/call-2.p7m",
        entry_name("call 3/ü", ".p7m"),
    ]
    assert manifest["certificate_subject"] == "CN=customer-archive"


def test_export_to_the_customers_kms_key_reads_with_the_official_esdk(
    world: World, tmp_path: Path
) -> None:
    customer_key = world.kms_client.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    plain = recordings(world, tmp_path, {"c1": 123_456})
    export_archive(
        world.org,
        [tmp_path / "0.enc"],
        tmp_path / "out.zip",
        decryptor=world.decryptor,
        target=register(world.store, world.org, kms_target(customer_key)),
        clients=world.clients,
    )
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        message = zf.read("recordings/c1.esdk")
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[customer_key], botocore_session=boto3.Session(region_name=REGION)._session
    )
    data, header = client.decrypt(source=message, key_provider=provider)
    assert data == plain["c1"]
    context = header.encryption_context
    assert context["kmsbridge:org"] == world.org and context["kmsbridge:recording"] == "c1"
    assert context["kmsbridge:purpose"] == "export"


def test_legacy_pkcs7_recordings_export_too(
    world: World, customer: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    ident, cert, key = customer
    recorder = make_identity("recorder", rsa_key(0))
    import_key_pair(
        world.store,
        world.wrapper,
        world.org,
        certificate_pem=recorder.cert_pem(),
        private_key_pem=recorder.key_pem(),
        now=FIXED_NOW,
    )
    rec_cert, _ = recorder.write(tmp_path, "recorder")
    (tmp_path / "old.wav").write_bytes(b"RIFF" + os.urandom(5000))
    smime_encrypt(tmp_path / "old.wav", tmp_path / "old.wav.p7m", rec_cert)
    manifest = export_archive(
        world.org,
        [tmp_path / "old.wav.p7m"],
        tmp_path / "out.zip",
        decryptor=world.decryptor,
        target=register(world.store, world.org, certificate_target(ident.cert_pem(), FIXED_NOW)),
    )
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        (tmp_path / "x.p7m").write_bytes(zf.read(manifest["recordings"][0]["file"]))
    smime_decrypt(tmp_path / "x.p7m", tmp_path / "x", cert, key)
    assert (tmp_path / "x").read_bytes() == (tmp_path / "old.wav").read_bytes()


@pytest.mark.parametrize("when", ["not-yet-valid", "expired"])
def test_recipient_outside_its_validity_is_refused(when: str) -> None:
    if when == "not-yet-valid":
        ident = make_identity("future", rsa_key(11), not_before=FIXED_NOW + DAY)
    else:
        ident = make_identity("past", rsa_key(11), not_after=FIXED_NOW - DAY)
    with pytest.raises(InvalidRequest, match="encrypt"):
        certificate_target(ident.cert_pem(), FIXED_NOW)


def test_weak_recipient_key_is_refused() -> None:
    weak = make_identity("weak", rsa_key(9, bits=1024))
    with pytest.raises(InvalidRequest, match="at least 2048"):
        certificate_target(weak.cert_pem(), FIXED_NOW)


def test_revoked_kms_key_stops_an_export_and_writes_nothing(
    world: World, customer: tuple[Identity, Path, Path], tmp_path: Path
) -> None:
    recordings(world, tmp_path, {"c1": 10})
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    with pytest.raises(AccessRevoked):
        export_archive(
            world.org,
            [tmp_path / "0.enc"],
            tmp_path / "out.zip",
            decryptor=world.decryptor,
            target=register(
                world.store, world.org, certificate_target(customer[0].cert_pem(), FIXED_NOW)
            ),
        )
    assert not (tmp_path / "out.zip").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.zip")]


def test_a_recording_over_the_memory_bound_is_refused(
    world: World, customer: tuple[Identity, Path, Path]
) -> None:
    exporter = Exporter(
        world.org, world.decryptor, certificate_target(customer[0].cert_pem(), FIXED_NOW),
        max_bytes=100_000,
    )  # fmt: skip
    assert exporter.export(io.BytesIO(world.encrypt(b"x" * 100_000)), name="a").size == 100_000
    with pytest.raises(InvalidRequest, match="export limit"):
        exporter.export(io.BytesIO(world.encrypt(b"x" * 100_001)), name="b")


def test_entry_names_are_safe_and_distinct() -> None:
    assert entry_name("call-1", ".p7m") == "recordings/call-1.p7m"
    odd = {entry_name(rid, ".p7m") for rid in ("a/b", "a_b", "../x", "..")}
    assert len(odd) == 4
    assert all(n.count("/") == 1 and n.split("/")[1] not in (".", "..") for n in odd)
