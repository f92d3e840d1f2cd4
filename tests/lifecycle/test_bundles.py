"""Public-key bundles expire: encryptors refuse a bundle whose active key is past not-after."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.clock import iso, utcnow
from kmsbridge.errors import InvalidRequest
from kmsbridge.keys.bundle import read_bundle, write_bundle
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.lifecycle.publishing import bundle_for
from kmsbridge.lifecycle.rotation import create_org, rotate
from tests.conftest import FIXED_NOW, World

DAY = timedelta(days=1)


def test_a_bundle_is_good_until_not_after_and_refused_from_then_on(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.json"
    bundle = bundle_for(world.store, world.org)
    assert bundle["not_after"] == iso(FIXED_NOW + 90 * DAY)
    write_bundle(bundle, path)
    last = FIXED_NOW + 90 * DAY - timedelta(seconds=1)
    assert read_bundle(path, world.org, now=last).kek_id == world.kek_id
    with pytest.raises(InvalidRequest, match=f"kmsbridge kek rotate {world.org}"):
        read_bundle(path, world.org, now=FIXED_NOW + 90 * DAY)


def test_after_rotation_a_new_bundle_carries_the_new_key_and_a_new_not_after(
    world: World, tmp_path: Path
) -> None:
    done = rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + 80 * DAY)
    bundle = bundle_for(world.store, world.org)
    assert bundle["kek"] == done.active_kek
    assert bundle["not_after"] == iso(FIXED_NOW + 170 * DAY)


def test_a_bundle_with_a_moved_not_after_no_longer_matches_nothing_else_changes(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.json"
    write_bundle(bundle_for(world.store, world.org), path)
    data = json.loads(path.read_text())
    data["not_after"] = "not a date"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidRequest, match="cannot read"):
        read_bundle(path, world.org, now=FIXED_NOW)


def test_the_encrypt_command_refuses_an_expired_bundle_and_writes_nothing(
    aws: AwsClients, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from kmsbridge.keys.table import KeyStore

    store = KeyStore(aws.client("dynamodb"), "kmsbridge-keks")
    store.create_table()
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    create_org(store, KekWrapper(aws), "acme", [arn], cryptoperiod_days=30, now=utcnow() - 31 * DAY)
    bundle = tmp_path / "bundle.json"
    assert main(["keys", "public", "acme", "-o", str(bundle)]) == 0
    (tmp_path / "in.wav").write_bytes(b"call audio")
    capsys.readouterr()
    argv = ["encrypt", "--org", "acme", "--recording-id", "r1"]
    files = [str(tmp_path / "in.wav"), str(tmp_path / "out.enc")]
    assert main([*argv, "--public-keys", str(bundle), *files]) == exit_codes.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: INVALID_REQUEST: ") and "kek rotate acme" in err
    assert not (tmp_path / "out.enc").exists()
    # Online, the same refusal, unless the caller allows rotating first.
    assert main([*argv, *files]) == exit_codes.USAGE
    assert main([*argv, "--rotate-if-expired", *files]) == 0
    assert (tmp_path / "out.enc").exists()
    assert main(["keys", "public", "acme", "-o", str(bundle), "--force"]) == 0
    assert main([*argv, "--public-keys", str(bundle), files[0], str(tmp_path / "o2")]) == 0
