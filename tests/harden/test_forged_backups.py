"""Issue 15 finding 6: an edited backup cannot restore an attacker's key as the org's KEK.

The backup's checksum is a plain SHA-256 that anyone can recompute. Reproduced before the
fix: an edited file whose org item names a KEK item holding the attacker's public key was
restored, and new recordings were then encrypted to the attacker. Now every KEK item the
import would write is unwrapped through KMS (the org's registered keys, the org and KEK id
in the context) and matched with its public key first: one bad item refuses the whole file
with INTEGRITY, and the key table is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.crypto.kek import generate_kek
from kmsbridge.errors import IntegrityError, InvalidRequest, NotFound, WrongOrg
from kmsbridge.keys.table import ORG_SORT_KEY, kek_to_item
from kmsbridge.lifecycle.backup import _to_json, checksum, export_org, import_backup
from kmsbridge.lifecycle.rotation import make_kek
from tests.conftest import FIXED_NOW, World


def table_state(world: World) -> Any:
    try:
        org = world.store.get_org(world.org)
    except NotFound:
        org = None
    return org, world.store.list_keks(world.org)


def resign(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k != "checksum"}
    return body | {"checksum": checksum(body)}


def with_active(backup: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """The backup with ``item`` added as the active KEK, the real one retired, re-summed."""
    body = json.loads(json.dumps(backup))
    for entry in body["items"]:
        if entry["kek"]["S"] == ORG_SORT_KEY:
            entry["active_kek"]["S"] = item["kek"]["S"]
        elif entry["state"]["S"] == "active":
            entry["state"]["S"] = "retired"
    body["items"].append(item)
    return resign(body)


def attacker_item(world: World, wrapped: bytes | None) -> dict[str, Any]:
    """A KEK item with the attacker's public key (they hold its private key)."""
    _, public = generate_kek()
    record = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    item = kek_to_item(record)
    item["kek"] = {"S": public.kek_id}
    item["public_key"] = {"B": public.spki_der}
    if wrapped is None:
        del item["wrapped_private_key"]
    else:
        item["wrapped_private_key"] = {"B": wrapped}
    return _to_json(item)


@pytest.mark.parametrize("blob", ["none", "genuine-of-another-kek", "the-real-active-kek"])
def test_an_attackers_public_key_as_active_kek_is_refused(world: World, blob: str) -> None:
    backup = export_org(world.store, world.org, now=FIXED_NOW)
    real = world.store.get_kek(world.org, world.kek_id).wrapped_private_key
    other = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    wrapped = {"none": None, "genuine-of-another-kek": other.wrapped_private_key}.get(blob, real)
    forged = with_active(backup, attacker_item(world, wrapped))
    world.store.delete_org_items(world.org)  # the disaster the backup is restoring from
    calls = world.wrapper.kms_calls
    with pytest.raises(IntegrityError) as refused:
        import_backup(world.store, world.wrapper, forged, kms_key_arns=[world.key_arn])
    assert refused.value.code == "INTEGRITY"
    assert table_state(world) == (None, [])  # nothing written
    # A blob is refused by KMS's context check or the public-key match, never used.
    assert world.wrapper.kms_calls - calls <= 2


def test_a_missing_kek_added_to_a_live_org_is_proven_too(world: World) -> None:
    """The org is in the table: only the extra item would be written, and it is refused."""
    backup = export_org(world.store, world.org, now=FIXED_NOW)
    body = json.loads(json.dumps(backup))
    item = attacker_item(world, world.store.get_kek(world.org, world.kek_id).wrapped_private_key)
    item["state"] = {"S": "retired"}
    body["items"].append(item)
    before = table_state(world)
    with pytest.raises(IntegrityError, match="whole file is refused"):
        import_backup(world.store, world.wrapper, resign(body))
    assert table_state(world) == before


def test_a_backup_naming_another_key_for_the_org_is_refused(world: World) -> None:
    """The attacker also swaps the org's KMS key for one of theirs in the file."""
    theirs = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    backup = export_org(world.store, world.org, now=FIXED_NOW)
    body = json.loads(json.dumps(backup))
    for entry in body["items"]:
        entry["kms_keys"] = {"L": [{"S": theirs}]}
    forged = resign(body)
    world.store.delete_org_items(world.org)
    with pytest.raises(InvalidRequest, match="name them"):  # no --kms-key: nothing assumed
        import_backup(world.store, world.wrapper, forged)
    with pytest.raises(InvalidRequest, match="other than the ones given"):
        import_backup(world.store, world.wrapper, forged, kms_key_arns=[world.key_arn])
    # Even if the operator is fooled into naming it, KMS says the blobs are not under it.
    with pytest.raises((IntegrityError, WrongOrg)):
        import_backup(world.store, world.wrapper, forged, kms_key_arns=[theirs])
    assert table_state(world) == (None, [])


def test_the_cli_refuses_the_forged_file_with_one_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    backup = export_org(world.store, world.org, now=FIXED_NOW)
    forged = with_active(backup, attacker_item(world, None))
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    world.store.delete_org_items(world.org)
    code = main(["kek", "import", str(path), "--kms-key", world.key_arn])
    out, err = capsys.readouterr()
    assert code == exit_codes.INTEGRITY and out == ""
    assert err.startswith("error: INTEGRITY: ") and err.count("\n") == 1
    assert table_state(world) == (None, [])
    # The genuine file restores, and the same checks pass for it.
    path.write_text(json.dumps(backup))
    assert main(["kek", "import", str(path), "--kms-key", world.key_arn]) == 0
    assert world.store.get_org(world.org).active_kek == world.kek_id
    assert "PRIVATE" not in capsys.readouterr().out
