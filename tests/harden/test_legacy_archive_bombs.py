"""Issue 15 finding 5: hostile legacy archives fail member by member, in bounded memory.

Reproduced before the fix: a 510 KiB zip of a crafted ``.p7m`` (its content 512 MiB of
zero "ciphertext", for the org's imported certificate) made ``legacy decrypt`` inflate and
"decrypt" 512 MiB; deeply nested indefinite lengths raised ``RecursionError``, which
aborted the whole archive. Now the bomb is refused before a byte is inflated (INTEGRITY,
no KMS call, no output), the nesting is INTEGRITY for that member only, every other
member still decrypts, and peak memory stays small.
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from kmsbridge.crypto import cms
from kmsbridge.errors import IntegrityError
from kmsbridge.legacy.import_key import import_key_pair
from kmsbridge.legacy.playback import decrypt_archive, decrypt_cms_stream
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import Identity, make_identity, rsa_key

MIB = 1024 * 1024
BOMB_BYTES = 512 * MIB
ENVELOPED_DATA = bytes.fromhex("06092a864886f70d010703")
DATA = bytes.fromhex("06092a864886f70d010701")


def tlv(data: bytes, at: int = 0) -> tuple[int, int, int]:
    """(tag, start of content, end) of the DER element at ``at`` (definite lengths)."""
    first = data[at + 1]
    if first < 0x80:
        return data[at], at + 2, at + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[at + 2 : at + 2 + count], "big")
    return data[at], at + 2 + count, at + 2 + count + length


def children(data: bytes, at: int) -> list[bytes]:
    _, start, end = tlv(data, at)
    out = []
    while start < end:
        out.append(data[start : tlv(data, start)[2]])
        start = tlv(data, start)[2]
    return out


def envelope_parts(p7m: bytes) -> tuple[bytes, bytes, bytes]:
    """version, recipientInfos and the content algorithm of a DER EnvelopedData."""
    explicit = children(p7m, 0)[1]  # ContentInfo's [0]
    enveloped = children(explicit, 0)[0]
    version, recipients, encrypted_content_info = children(enveloped, 0)[:3]
    algorithm = children(encrypted_content_info, 0)[1]
    return version, recipients, algorithm


def ber_p7m(parts: tuple[bytes, bytes, bytes], content: bytes) -> bytes:
    """A BER EnvelopedData with indefinite outer lengths around ``content`` (raw TLVs)."""
    version, recipients, algorithm = parts
    head = b"\x30\x80" + ENVELOPED_DATA + b"\xa0\x80\x30\x80" + version + recipients
    return head + b"\x30\x80" + DATA + algorithm + content + b"\x00\x00" * 4


@pytest.fixture
def recorder(world: World) -> Identity:
    ident = make_identity("recorder-bomb", rsa_key(4))
    import_key_pair(
        world.store,
        world.wrapper,
        world.org,
        certificate_pem=ident.cert_pem(),
        private_key_pem=ident.key_pem(),
        now=FIXED_NOW,
    )
    return ident


def good_p7m(recorder: Identity) -> bytes:
    return cms.encrypt_for(recorder.cert, b"a genuine legacy call" * 100)


def write_bomb(zf: zipfile.ZipFile, parts: tuple[bytes, bytes, bytes]) -> None:
    """512 MiB of zero content for the org's certificate, streamed into a deflated member."""
    length = b"\x84" + BOMB_BYTES.to_bytes(4, "big")
    with zf.open("bomb.p7m", "w", force_zip64=True) as member:
        head = ber_p7m(parts, b"")[:-8]  # all but the four end-of-contents
        member.write(head + b"\x80" + length)
        zeros = bytes(MIB)
        for _ in range(BOMB_BYTES // MIB):
            member.write(zeros)
        member.write(b"\x00\x00" * 4)


def nested(depth: int, parts: tuple[bytes, bytes, bytes]) -> bytes:
    """Indefinite lengths nested ``depth`` deep inside the recipient set."""
    version, _, algorithm = parts
    deep = b"\x31\x80" + b"\x30\x80" * depth + b"\x00\x00" * (depth + 1)
    return ber_p7m((version, deep, algorithm), b"\x80\x00")


def test_a_zip_bomb_member_is_refused_before_inflating_and_alone(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    parts = envelope_parts(good_p7m(recorder))
    archive = tmp_path / "legacy.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        write_bomb(zf, parts)
        zf.writestr("good.p7m", good_p7m(recorder))
    assert archive.stat().st_size < 600 * 1024  # ~510 KiB that claims 512 MiB

    calls = world.wrapper.kms_calls
    tracemalloc.start()
    try:
        results = decrypt_archive(
            archive, tmp_path / "out", org=world.org, decryptor=world.decryptor
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bomb, good = results
    assert (bomb.ok, bomb.error and bomb.error["code"]) == (False, "INTEGRITY")
    assert "compression bomb" in str(bomb.error and bomb.error["message"])
    assert good.ok and (tmp_path / "out" / "good").read_bytes() == b"a genuine legacy call" * 100
    assert not (tmp_path / "out" / "bomb").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]  # no stray .part
    assert peak < 32 * MIB
    assert world.wrapper.kms_calls - calls == 1  # the good member's KEK only


def test_a_member_over_the_size_cap_is_refused_alone(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    archive = tmp_path / "legacy.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("big.p7m", cms.encrypt_for(recorder.cert, bytes(64 * 1024)))
        zf.writestr("small.p7m", good_p7m(recorder))
    big, small = decrypt_archive(
        archive, tmp_path / "out", org=world.org, decryptor=world.decryptor, max_member_bytes=8192
    )
    assert (big.ok, big.error and big.error["code"]) == (False, "INVALID_REQUEST")
    assert small.ok


def test_deep_nesting_is_integrity_for_that_member_only(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    parts = envelope_parts(good_p7m(recorder))
    deep = nested(100_000, parts)  # RecursionError before the fix
    with pytest.raises(IntegrityError, match="nests more than"):
        cms.read_envelope(io.BytesIO(deep))
    archive = tmp_path / "legacy.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deep.p7m", deep)
        zf.writestr("good.p7m", good_p7m(recorder))
    deep_result, good = decrypt_archive(
        archive, tmp_path / "out", org=world.org, decryptor=world.decryptor
    )
    assert (deep_result.ok, deep_result.error and deep_result.error["code"]) == (False, "INTEGRITY")
    assert good.ok


def test_deeply_nested_constructed_content_is_integrity(world: World, recorder: Identity) -> None:
    """The content itself (BER constructed OCTET STRINGs) nested past the limit."""
    parts = envelope_parts(good_p7m(recorder))
    depth = 10_000
    content = b"\xa0\x80" + b"\x24\x80" * depth + b"\x00\x00" * (depth + 1)
    with pytest.raises(IntegrityError):
        decrypt_cms_stream(
            io.BytesIO(ber_p7m(parts, content)),
            io.BytesIO(),
            org=world.org,
            decryptor=world.decryptor,
        )
