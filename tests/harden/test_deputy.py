"""Hardening 3, confused deputy: one org's request never gets another org's key.

Two orgs, acme and globex, in one key table, each with its own customer KMS key. Every
case asks the decryptor as one org for something that belongs to, or was moved from, the
other, and pins the exact code and the number of KMS calls it cost (zero where the
refusal needs no KMS, so a wrong org cannot even make KMS work for it). In no case is a
data key returned or anything left in the caches.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import parse_header
from kmsbridge.errors import KmsBridgeError
from kmsbridge.formats import CONTEXT_ORG
from kmsbridge.keys.records import KekRecord
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import kek_data_key
from tests.conftest import FIXED_NOW, World
from tests.harden import encrypt, header_length, report
from tests.harden.test_tamper import rebuild

OTHER = "globex"


@dataclass
class Other:
    org: str
    key_arn: str
    kek: KekRecord

    @property
    def public_key(self) -> KekPublicKey:
        return KekPublicKey.from_der(self.kek.public_key)


@pytest.fixture
def other(world: World) -> Other:
    arn = world.kms_client.create_key(Description="globex's key")["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    _, kek = create_org(world.store, world.wrapper, OTHER, [arn], now=FIXED_NOW)
    return Other(OTHER, arn, kek)


def header(recording: bytes) -> bytes:
    return recording[: header_length(recording)]


def refusal(world: World, org: str, recording: bytes) -> tuple[str, int]:
    """The error code of asking ``org``'s key for a recording, and the KMS calls it made."""
    before = world.wrapper.kms_calls
    with pytest.raises(KmsBridgeError) as info:
        world.decryptor.unwrap(org, header(recording))
    assert "data_key" not in info.value.to_dict()
    return info.value.code, world.wrapper.kms_calls - before


def no_cached_key(world: World, org: str, recording: bytes) -> bool:
    """Neither the KEK the recording names nor its data key is cached under ``org``."""
    kek_id = recording_kek(recording)
    return (
        world.decryptor.keks.get((org, kek_id)) is None
        and world.decryptor.data_keys.get((org, header(recording))) is None
    )


def test_a_recording_asked_as_another_org_is_wrong_org_without_kms(
    world: World, other: Other
) -> None:
    mine = world.encrypt(b"acme's call")
    world.decryptor.unwrap(world.org, header(mine))  # its data key is now cached for acme
    assert refusal(world, OTHER, mine) == ("WRONG_ORG", 0)
    assert no_cached_key(world, OTHER, mine)


def test_a_recording_whose_context_was_rewritten_to_another_org(world: World, other: Other) -> None:
    mine = world.encrypt(b"acme's call")
    moved = rebuild(mine, context={**dict(_context(mine)), CONTEXT_ORG: OTHER})
    assert refusal(world, world.org, moved) == ("WRONG_ORG", 0)
    # As globex: globex has no KEK of that id (the key table says so); nothing asked of KMS.
    assert refusal(world, OTHER, moved) == ("NOT_FOUND", 0)
    assert no_cached_key(world, OTHER, moved)


def test_a_kek_item_copied_into_another_orgs_partition(world: World, other: Other) -> None:
    mine = world.encrypt(b"acme's call")
    moved = rebuild(mine, context={**dict(_context(mine)), CONTEXT_ORG: OTHER})
    copied = replace(world.store.get_kek(world.org, world.kek_id), org=OTHER, version=1)
    world.store.put_new_kek(copied)
    # The item lists acme's KMS key, which globex does not register: refused before KMS.
    assert refusal(world, OTHER, moved) == ("WRONG_ORG", 0)
    # A recording made by anyone with acme's public key under globex's name: the same.
    forged = encrypt(world.public_key, OTHER, b"forged", "call-f")
    assert refusal(world, OTHER, forged) == ("WRONG_ORG", 0)
    assert no_cached_key(world, OTHER, moved) and no_cached_key(world, OTHER, forged)


@pytest.mark.parametrize(
    ("blob_of", "keys_of", "expected"),
    [
        # acme's blob in globex's item, globex's key listed: no data key for it, no KMS call.
        ("acme", "globex", ("INTEGRITY", 0)),
        # acme's key listed in globex's item: not registered for globex, refused before KMS.
        ("acme", "acme", ("WRONG_ORG", 0)),
        ("globex", "acme", ("WRONG_ORG", 0)),
    ],
)
def test_another_orgs_blob_or_kms_key_in_an_item(
    world: World, other: Other, blob_of: str, keys_of: str, expected: tuple[str, int]
) -> None:
    theirs = encrypt(other.public_key, OTHER, b"globex's call", "call-g")
    blobs = {
        world.org: world.store.get_kek(world.org, world.kek_id).wrapped_private_key,
        OTHER: other.kek.wrapped_private_key,
    }
    keys = {world.org: (world.key_arn,), OTHER: (other.key_arn,)}
    item = world.store.get_kek(OTHER, other.kek.kek_id)
    world.store.update_kek(item, wrapped_private_key=blobs[blob_of], kms_keys=keys[keys_of])
    assert refusal(world, OTHER, theirs) == expected
    assert no_cached_key(world, OTHER, theirs)
    report("deputy/item", {"blob": blob_of, "kms_keys": keys_of, "outcome": expected[0]})


def test_an_org_that_does_not_exist_is_not_found(world: World) -> None:
    nobody = encrypt(world.public_key, "nobody", b"x", "call-n")
    assert refusal(world, "nobody", nobody) == ("NOT_FOUND", 0)


def _context(recording: bytes) -> dict[str, str]:
    return dict(parse_header(io.BytesIO(recording).read).encryption_context)


def recording_kek(recording: bytes) -> str:
    return kek_data_key(parse_header(io.BytesIO(recording).read))[0]


def test_a_listed_key_without_a_data_key_in_the_blob_is_skipped(world: World, other: Other) -> None:
    """globex registers a second key of its own, and its item lists it first: the blob has
    no data key for it, so no KMS call is made with it, and globex's first key unwraps."""
    theirs = encrypt(other.public_key, OTHER, b"globex's call", "call-g")
    spare = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    world.store.update_org(world.store.get_org(OTHER), kms_keys=(spare, other.key_arn))
    item = world.store.get_kek(OTHER, other.kek.kek_id)
    world.store.update_kek(item, kms_keys=(spare, other.key_arn))
    assert world.decryptor.unwrap(OTHER, header(theirs)).kek_id == other.kek.kek_id
