"""Backups of the key items: export, wipe, import, play; checksums; never overwrite (moto)."""

from __future__ import annotations

import base64
import io
import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import InvalidRequest, NotFound
from kmsbridge.keys.table import ORG_SORT_KEY
from kmsbridge.lifecycle.backup import export_org, import_backup, read_backup, write_backup
from kmsbridge.lifecycle.rotation import public_key_for_encryption, rotate
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, Clock, World

DAY = timedelta(days=1)


def play(world: World, blob: bytes) -> bytes:
    out = io.BytesIO()
    decryptor = Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=decryptor)
    return out.getvalue()


def two_keks(world: World) -> dict[bytes, bytes]:
    recordings = {world.encrypt(b"before", "r1"): b"before"}
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    public = public_key_for_encryption(
        world.store, world.org, trust=world.trust, now=FIXED_NOW + DAY
    )
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"after"), out, public_key=public, org=world.org, recording_id="r2")
    recordings[out.getvalue()] = b"after"
    return recordings


def test_export_wipe_import_and_every_recording_plays(world: World, tmp_path: Path) -> None:
    recordings = two_keks(world)
    path = tmp_path / "acme.backup.json"
    write_backup(export_org(world.store, world.org, now=FIXED_NOW), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    items_before = world.store.get_org(world.org), world.store.list_keks(world.org)

    world.store.delete_org_items(world.org)
    with pytest.raises(NotFound, match="not in the key table"):
        play(world, next(iter(recordings)))

    result = import_backup(
        world.store, world.wrapper, read_backup(path), kms_key_arns=[world.key_arn]
    )
    assert (len(result.created), result.identical) == (3, ())
    assert result.created[-1] == ORG_SORT_KEY  # the org item only after the KEKs it names
    assert (world.store.get_org(world.org), world.store.list_keks(world.org)) == items_before
    for blob, data in recordings.items():
        assert play(world, blob) == data


def test_the_backup_holds_the_wrapped_keys_as_stored_and_nothing_else(
    world: World, tmp_path: Path
) -> None:
    two_keks(world)
    backup = export_org(world.store, world.org, now=FIXED_NOW)
    stored = {k.kek_id: k.wrapped_private_key for k in world.store.list_keks(world.org)}
    in_file = {
        i["kek"]["S"]: base64.b64decode(i["wrapped_private_key"]["B"])
        for i in backup["items"]
        if i["kek"]["S"] != ORG_SORT_KEY
    }
    assert in_file == stored
    assert backup["checksum"].startswith("sha256:") and len(backup["checksum"]) == 71
    assert backup["exported_at"] == "2026-11-01T12:00:00Z"


def test_import_twice_is_a_no_op(world: World, tmp_path: Path) -> None:
    two_keks(world)
    path = tmp_path / "b.json"
    write_backup(export_org(world.store, world.org), path)
    result = import_backup(
        world.store, world.wrapper, read_backup(path), kms_key_arns=[world.key_arn]
    )
    assert result.created == () and len(result.identical) == 3


def test_only_missing_items_are_restored(world: World, tmp_path: Path) -> None:
    recordings = two_keks(world)
    path = tmp_path / "b.json"
    write_backup(export_org(world.store, world.org), path)
    lost = world.kek_id  # the retired KEK item is deleted by accident
    world.store.client.delete_item(
        TableName=world.store.table, Key={"org": {"S": world.org}, "kek": {"S": lost}}
    )
    result = import_backup(
        world.store, world.wrapper, read_backup(path), kms_key_arns=[world.key_arn]
    )
    assert result.created == (lost,) and len(result.identical) == 2
    for blob, data in recordings.items():
        assert play(world, blob) == data


def test_an_item_that_differs_is_never_overwritten(world: World, tmp_path: Path) -> None:
    two_keks(world)
    path = tmp_path / "b.json"
    write_backup(export_org(world.store, world.org), path)
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + 2 * DAY)  # org item changes
    world.store.client.delete_item(  # and one KEK item is gone, which would be restorable
        TableName=world.store.table, Key={"org": {"S": world.org}, "kek": {"S": world.kek_id}}
    )
    before = world.store.get_org(world.org), world.store.list_keks(world.org)
    with pytest.raises(InvalidRequest, match="refusing to overwrite") as caught:
        import_backup(world.store, world.wrapper, read_backup(path), kms_key_arns=[world.key_arn])
    assert "org settings" in caught.value.message and "KEK" in caught.value.message
    assert (world.store.get_org(world.org), world.store.list_keks(world.org)) == before


DAMAGES = ("flip", "drop-item", "rename-org", "not-json", "version")


def damaged(data: dict[str, Any], damage: str) -> str:
    data = json.loads(json.dumps(data))
    if damage == "flip":
        blob = bytearray(base64.b64decode(data["items"][1]["wrapped_private_key"]["B"]))
        blob[100] ^= 1
        data["items"][1]["wrapped_private_key"]["B"] = base64.b64encode(bytes(blob)).decode()
    elif damage == "drop-item":
        del data["items"][1]
    elif damage == "rename-org":
        data["org"] = "globex"
    elif damage == "version":
        data["kmsbridge_backup"] = 2
    return "{not json" if damage == "not-json" else json.dumps(data)


def test_a_damaged_backup_is_refused_before_anything_is_written(
    world: World, tmp_path: Path
) -> None:
    two_keks(world)
    backup = export_org(world.store, world.org)
    world.store.delete_org_items(world.org)
    for damage in DAMAGES:
        path = tmp_path / f"{damage}.json"
        path.write_text(damaged(backup, damage))
        with pytest.raises(InvalidRequest):
            import_backup(
                world.store, world.wrapper, read_backup(path), kms_key_arns=[world.key_arn]
            )
        assert world.store.list_keks(world.org) == [], damage


def test_a_backup_whose_items_lie_is_refused_even_with_a_recomputed_checksum(
    world: World, tmp_path: Path
) -> None:
    from kmsbridge.lifecycle.backup import checksum

    two_keks(world)
    backup = export_org(world.store, world.org)
    body = {k: v for k, v in backup.items() if k != "checksum"}
    body["items"][1]["kek"]["S"] = "0" * 64  # a KEK id that is not its public key's
    forged = body | {"checksum": checksum(body)}
    world.store.delete_org_items(world.org)
    with pytest.raises(InvalidRequest, match="does not match"):
        import_backup(world.store, world.wrapper, forged, kms_key_arns=[world.key_arn])
    assert world.store.list_keks(world.org) == []


def test_export_of_an_unknown_org_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        export_org(world.store, "nobody")


def test_backups_carry_the_certificates_and_the_platform_ca(world: World) -> None:
    two_keks(world)
    backup = export_org(world.store, world.org)
    assert base64.b64decode(backup["platform_ca"]) == world.certifier.ca.certificate_der
    certified = [i for i in backup["items"] if "certificate" in i]
    assert len(certified) == 2  # both KEKs, the retired one too
    world.store.delete_org_items(world.org)
    import_backup(world.store, world.wrapper, backup, kms_key_arns=[world.key_arn])
    public = public_key_for_encryption(
        world.store, world.org, trust=world.trust, now=FIXED_NOW + DAY
    )
    assert public.kek_id == world.store.get_org(world.org).active_kek


@pytest.mark.parametrize("forgery", ["swapped", "foreign-ca", "carried-ca-only-forged"])
def test_a_backup_with_forged_certificates_is_refused_and_nothing_written(
    world: World, forgery: str
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from kmsbridge.devtools.forgery import look_alike_bundle
    from kmsbridge.errors import IntegrityError
    from kmsbridge.lifecycle.backup import checksum

    two_keks(world)
    backup = export_org(world.store, world.org)
    body = {k: v for k, v in backup.items() if k != "checksum"}
    keks = [i for i in body["items"] if i["kek"]["S"] != ORG_SORT_KEY]
    forged_kek, forged_ca = x509.load_pem_x509_certificates(look_alike_bundle(world.org))
    if forgery == "swapped":  # each KEK item carries the other's (genuine) certificate
        keks[0]["certificate"], keks[1]["certificate"] = (
            keks[1]["certificate"],
            keks[0]["certificate"],
        )
    else:
        keks[0]["certificate"] = {
            "B": base64.b64encode(forged_kek.public_bytes(Encoding.DER)).decode()
        }
    if forgery == "carried-ca-only-forged":  # the backup names the forger's CA as the platform's
        body["platform_ca"] = base64.b64encode(forged_ca.public_bytes(Encoding.DER)).decode()
    world.store.delete_org_items(world.org)
    with pytest.raises(IntegrityError, match="certificate in the backup does not check out"):
        import_backup(
            world.store,
            world.wrapper,
            body | {"checksum": checksum(body)},
            kms_key_arns=[world.key_arn],
        )
    assert world.store.list_keks(world.org) == []
