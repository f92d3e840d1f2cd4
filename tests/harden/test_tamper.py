"""Hardening 1, tampering: every damaged recording is refused and nothing is published.

One org, recordings of 3,000 bytes in 256-byte frames (12 frames), decrypted through the
path API (``decrypt_file``) with the real decryptor (moto KMS, cached KEK). Each case must
fail with INTEGRITY, except for two header cases, asserted byte by byte:
- the change lands in the org name of the encryption context and leaves valid UTF-8: the
  recording now names another org, WRONG_ORG, refused before any key is asked;
- the change lands in the KEK id of the data key and leaves 64 lowercase hex digits: the
  recording now names a KEK the org does not have, NOT_FOUND from the key table (no KMS
  call). The KEK id is not authenticated until the data key is, so this is the answer
  for any recording of a KEK missing from the table (say, a table restored from an older
  backup), which the Lambda contract pins as NOT_FOUND.
After every failure the directory holds only the source: no target, no temporary file.
"""

from __future__ import annotations

import io
import itertools
import random
import struct
from pathlib import Path

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import (
    EncryptedDataKey,
    MessageHeader,
    parse_header,
    serialize_header_body,
)
from kmsbridge.formats import CONTEXT_ORG
from kmsbridge.lifecycle.rotation import make_kek
from tests.conftest import FIXED_NOW, World
from tests.harden import PathProbe, encrypt, flip, frame_spans, header_length, report, tally

FRAME = 256
SIZE = 3000  # 11 full frames and a final frame of 184 bytes
BODY_FLIPS = 1000


def plain(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


@pytest.fixture
def probe(world: World, tmp_path: Path) -> PathProbe:
    return PathProbe(tmp_path, world.org, world.decryptor)


@pytest.fixture
def rec_a(world: World, probe: PathProbe) -> bytes:
    recording = encrypt(world.public_key, world.org, plain(1), "call-a", FRAME)
    assert probe.plaintext(recording) == plain(1)  # the control: untouched, it plays
    return recording


@pytest.fixture
def rec_b(world: World, probe: PathProbe) -> bytes:
    recording = encrypt(world.public_key, world.org, plain(2), "call-b", FRAME)
    assert probe.plaintext(recording) == plain(2)
    return recording


def org_value_span(header: bytes, org: str) -> range:
    """Byte positions of the org name inside the serialized encryption context."""
    key = CONTEXT_ORG.encode()
    at = header.index(key + struct.pack(">H", len(org)) + org.encode()) + len(key) + 2
    return range(at, at + len(org))


def expected_for_flip(header: bytes, org: str, kek_id: str, position: int, mask: int) -> str:
    if position in org_value_span(header, org):
        # ASCII ^ 0x01 is another ASCII org name; ^ 0xFF is not UTF-8 (malformed context).
        return "WRONG_ORG" if mask == 0x01 else "INTEGRITY"
    at = header.index(kek_id.encode())
    if at <= position < at + len(kek_id):
        digit = chr(header[position] ^ mask)
        return "NOT_FOUND" if digit in "0123456789abcdef" else "INTEGRITY"
    return "INTEGRITY"


def test_every_header_byte_flipped_is_refused(rec_a: bytes, probe: PathProbe, world: World) -> None:
    length = header_length(rec_a)
    calls = world.wrapper.kms_calls
    outcomes, wrong = [], []
    for position in range(length):
        for mask in (0x01, 0xFF):
            outcome = probe.outcome(flip(rec_a, position, mask))
            expected = expected_for_flip(rec_a[:length], world.org, world.kek_id, position, mask)
            if outcome != expected:
                wrong.append((position, mask, outcome))
            outcomes.append(outcome)
    report("tamper/header", {"bytes": length, "cases": len(outcomes), **tally(outcomes)})
    assert wrong == []
    assert tally(outcomes)["WRONG_ORG"] == len(world.org)
    assert world.wrapper.kms_calls == calls  # the KEK stayed cached; no refusal reached KMS


def test_random_body_bytes_flipped_are_refused(rec_a: bytes, probe: PathProbe) -> None:
    rng = random.Random(9)
    start = header_length(rec_a)
    outcomes = [
        probe.outcome(flip(rec_a, rng.randrange(start, len(rec_a)), rng.randrange(1, 256)))
        for _ in range(BODY_FLIPS)
    ]
    report("tamper/body", {"cases": len(outcomes), **tally(outcomes)})
    assert tally(outcomes) == {"INTEGRITY": BODY_FLIPS}


def test_every_truncation_is_refused(rec_a: bytes, probe: PathProbe) -> None:
    spans = frame_spans(rec_a)
    assert len(spans) == SIZE // FRAME + 1
    boundaries = {start for start, _ in spans}
    outcomes = [probe.outcome(rec_a[:cut]) for cut in range(len(rec_a))]
    report(
        "tamper/truncate",
        {"cases": len(outcomes), "at_frame_boundaries": len(boundaries), **tally(outcomes)},
    )
    assert tally(outcomes) == {"INTEGRITY": len(rec_a)}


def test_appended_bytes_are_refused(rec_a: bytes, rec_b: bytes, probe: PathProbe) -> None:
    rng = random.Random(10)
    spans = frame_spans(rec_a)
    final_start = spans[-1][0]
    tails = [rng.randbytes(n) for n in range(1, 65)]
    tails += [
        rec_a[final_start:],  # the final frame again
        rec_a[spans[0][0] : spans[0][1]],  # the first frame again
        rec_b,  # a whole second recording
    ]
    outcomes = [probe.outcome(rec_a + tail) for tail in tails]
    report("tamper/append", {"cases": len(outcomes), **tally(outcomes)})
    assert tally(outcomes) == {"INTEGRITY": len(tails)}


def test_frames_swapped_between_and_within_recordings_are_refused(
    rec_a: bytes, rec_b: bytes, probe: PathProbe
) -> None:
    spans_a, spans_b = frame_spans(rec_a), frame_spans(rec_b)
    assert spans_a == spans_b  # same sizes: each frame of b fits the place of a's
    cases = []
    for (s, e), (bs, be) in zip(spans_a, spans_b, strict=True):
        cases.append(rec_a[:s] + rec_b[bs:be] + rec_a[e:])  # b's frame i in a's place i
    regular = spans_a[:-1]
    for (s1, e1), (s2, e2) in itertools.pairwise(regular):
        cases.append(rec_a[:s1] + rec_a[s2:e2] + rec_a[s1:e1] + rec_a[e2:])  # reordered
        # Frame i+1's IV, ciphertext and tag under frame i's sequence number.
        cases.append(rec_a[: s1 + 4] + rec_a[s2 + 4 : e2] + rec_a[e1:])
    cut_a, cut_b = header_length(rec_a), header_length(rec_b)
    cases.append(rec_a[:cut_a] + rec_b[cut_b:])  # a's header, b's body
    cases.append(rec_b[:cut_b] + rec_a[cut_a:])  # b's header, a's body
    outcomes = [probe.outcome(case) for case in cases]
    report("tamper/swap", {"cases": len(outcomes), **tally(outcomes)})
    assert tally(outcomes) == {"INTEGRITY": len(cases)}


def rebuild(recording: bytes, tag: bytes | None = None, **changes: object) -> bytes:
    """The recording with header fields replaced, keeping its tag unless one is given."""
    h = parse_header(io.BytesIO(recording).read)
    fields: dict[str, object] = {
        "message_id": h.message_id,
        "context": dict(h.encryption_context),
        "edks": h.encrypted_data_keys,
        "frame_length": h.frame_length,
        "commitment": h.commitment,
    }
    fields.update(changes)
    body = serialize_header_body(**fields)  # type: ignore[arg-type]
    return body + (h.auth_tag if tag is None else tag) + recording[len(h.raw) :]


def header_of(recording: bytes) -> MessageHeader:
    return parse_header(io.BytesIO(recording).read)


def test_data_keys_exchanged_between_recordings_are_refused(
    world: World, rec_a: bytes, rec_b: bytes, probe: PathProbe
) -> None:
    assert rebuild(rec_a) == rec_a  # the rebuild itself changes nothing
    rotated = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.put_new_kek(rotated)
    rec_c = encrypt(KekPublicKey.from_der(rotated.public_key), world.org, plain(3), "call-c", FRAME)
    assert probe.plaintext(rec_c) == plain(3)  # a second KEK of the org, and it plays
    a, b, c = header_of(rec_a), header_of(rec_b), header_of(rec_c)
    cases = [
        rebuild(rec_a, edks=b.encrypted_data_keys),  # b's data key, a's commitment and tag
        rebuild(rec_a, edks=b.encrypted_data_keys, commitment=b.commitment),
        rebuild(rec_a, edks=b.encrypted_data_keys, commitment=b.commitment, tag=b.auth_tag),
        rebuild(  # b's whole key material under a's context
            rec_a,
            message_id=b.message_id,
            edks=b.encrypted_data_keys,
            commitment=b.commitment,
            tag=b.auth_tag,
        ),
        rebuild(rec_a, edks=c.encrypted_data_keys),  # the other KEK's data key
        rebuild(rec_a, edks=c.encrypted_data_keys, commitment=c.commitment, tag=c.auth_tag),
        rebuild(  # a's wrapped data key filed under the other KEK's id
            rec_a,
            edks=(
                EncryptedDataKey(
                    "kmsbridge",
                    c.encrypted_data_keys[0].key_info,
                    a.encrypted_data_keys[0].ciphertext,
                ),
            ),
        ),
        rebuild(rec_a, edks=a.encrypted_data_keys + b.encrypted_data_keys),  # two of ours
    ]
    outcomes = [probe.outcome(case) for case in cases]
    report("tamper/data-key", {"cases": len(outcomes), **tally(outcomes)})
    assert tally(outcomes) == {"INTEGRITY": len(cases)}
