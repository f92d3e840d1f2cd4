"""Range decryption: only the frames of the range are read and authenticated, from a file,
a file object or S3 (moto in process); what a range proves, and what it does not."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.cli.main import main
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import IntegrityError, InvalidRequest, NotFound, WrongOrg
from kmsbridge.formats import MAX_RANGE_BYTES
from kmsbridge.integrations.esdk import esdk_kek_provider
from kmsbridge.integrations.s3 import S3Object
from kmsbridge.recordings.codec import encrypt_stream, private_key_data_keys, read_header
from kmsbridge.recordings.ranges import HEADER_PROBE_BYTES, DecryptedRange, decrypt_range
from tests.conftest import World
from tests.recordings.test_codec_interop import Esdk

ORG = "acme"
F = 128  # small frames: many frames in little data
REGULAR = F + 28
DATA = os.urandom(10 * F + 37)  # 10 regular frames and a final frame of 37 bytes
TOTAL = len(DATA)


def encrypt(data: bytes, public: KekPublicKey, frame_length: int = F, **kw: Any) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data),
        out,
        public_key=public,
        org=ORG,
        recording_id="call-7",
        frame_length=frame_length,
        **kw,
    )
    return out.getvalue()


def header_bytes(blob: bytes) -> int:
    return len(read_header(io.BytesIO(blob)).raw)


class CountingKeys:
    """A data-key source from the private key that counts how often it was asked."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        self._source = private_key_data_keys(private)
        self.calls = 0

    def __call__(self, org: str, header: bytes) -> bytes:
        self.calls += 1
        return self._source(org, header)


@pytest.fixture
def keys(kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey]) -> CountingKeys:
    return CountingKeys(kek_pair[0])


@pytest.fixture(scope="module")
def blob(kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey]) -> bytes:
    return encrypt(DATA, kek_pair[1])


Reader = Callable[[bytes, int, int], DecryptedRange]


@pytest.fixture(params=["path", "file", "s3"])
def read_range(request: pytest.FixtureRequest, keys: CountingKeys, tmp_path: Path) -> Reader:
    """decrypt_range over each kind of source holding the given bytes."""
    kind = request.param

    def read(data: bytes, start: int, end: int) -> DecryptedRange:
        if kind == "path":
            path = tmp_path / f"rec-{os.urandom(4).hex()}.esdk"
            path.write_bytes(data)
            return decrypt_range(path, start, end, org=ORG, data_keys=keys)
        if kind == "file":
            return decrypt_range(io.BytesIO(data), start, end, org=ORG, data_keys=keys)
        s3 = request.getfixturevalue("s3")
        s3.client.put_object(Bucket=s3.bucket, Key=s3.key, Body=data)
        return decrypt_range(s3, start, end, org=ORG, data_keys=keys)

    return read


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[tuple[Any, str]]:
    """One moto S3 (in process) for the module: starting moto per test costs more than S3."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        with mock_aws():
            clients = AwsClients(AwsSettings(region="us-east-1"))
            client = clients.client("s3")
            client.create_bucket(Bucket="recordings")
            yield client, "recordings"


@pytest.fixture
def s3(s3_bucket: tuple[Any, str]) -> S3Object:
    client, bucket = s3_bucket
    return S3Object(client, bucket, f"rec-{os.urandom(6).hex()}")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, F),  # one whole frame
        (2 * F, 4 * F),  # frame boundaries, two frames
        (5, 50),  # inside the first frame
        (3 * F + 1, 3 * F + 2),  # one byte inside a frame
        (F - 1, 7 * F + 1),  # spanning several frames, cut at both ends
        (10 * F, TOTAL),  # exactly the final frame
        (10 * F - 5, 10 * F + 5),  # across into the final frame
        (TOTAL - 1, TOTAL),  # the last byte
        (0, TOTAL),  # the whole recording
    ],
)
def test_a_range_is_the_plaintext_at_those_offsets(
    read_range: Reader, blob: bytes, start: int, end: int
) -> None:
    part = read_range(blob, start, end)
    assert part.data == DATA[start:end]
    assert (part.start, part.end, part.plaintext_bytes) == (start, end, TOTAL)
    assert (part.org, part.recording_id) == (ORG, "call-7")


@pytest.mark.parametrize("at", [0, 500, TOTAL])
def test_an_empty_range_is_empty_but_still_checks_the_header(
    read_range: Reader, blob: bytes, keys: CountingKeys, at: int
) -> None:
    assert read_range(blob, at, at).data == b""
    assert keys.calls == 1
    tampered = bytearray(blob)
    tampered[header_bytes(blob) - 1] ^= 1  # the header's tag
    with pytest.raises(IntegrityError):
        read_range(bytes(tampered), at, at)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (0, TOTAL + 1, "past the end"),
        (TOTAL + 1, TOTAL + 1, "past the end"),
        (20, 10, "after its end"),
        (-1, 10, "0 or more"),
        (0, MAX_RANGE_BYTES + 1, "at most"),
    ],
)
def test_a_range_outside_the_recording_is_refused(
    read_range: Reader, blob: bytes, start: int, end: int, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        read_range(blob, start, end)


@pytest.mark.parametrize("size", [0, 1, F - 1, F, F + 1, 3 * F, 3 * F + 5])
def test_every_layout_around_frame_boundaries(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey], keys: CountingKeys, size: int
) -> None:
    data = os.urandom(size)
    blob = encrypt(data, kek_pair[1])
    for start, end in [(0, size), (size // 2, size), (0, size // 2), (size, size)]:
        part = decrypt_range(io.BytesIO(blob), start, end, org=ORG, data_keys=keys)
        assert part.data == data[start:end]
        assert part.plaintext_bytes == size


def test_an_esdk_recording_with_an_empty_final_frame(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey], keys: CountingKeys
) -> None:
    """The Python ESDK ends a multiple of the frame length with an empty final frame."""
    private, public = kek_pair
    esdk = Esdk(esdk_kek_provider(public, private), private, public)
    data = os.urandom(4 * F)
    blob = esdk.encrypt(data, F)
    for start, end in [(0, 4 * F), (3 * F, 4 * F), (4 * F, 4 * F), (F + 3, 2 * F + 3)]:
        part = decrypt_range(io.BytesIO(blob), start, end, org="acme", data_keys=keys)
        assert part.data == data[start:end]
    assert part.plaintext_bytes == 4 * F
    with pytest.raises(InvalidRequest, match="past the end"):
        decrypt_range(io.BytesIO(blob), 0, 4 * F + 1, org="acme", data_keys=keys)


def frame_offset(blob: bytes, index: int) -> int:
    return header_bytes(blob) + index * REGULAR


@pytest.mark.parametrize("index", [0, 4, 9, 10])
def test_a_tampered_frame_inside_the_range_fails_with_no_bytes(
    read_range: Reader, blob: bytes, index: int
) -> None:
    tampered = bytearray(blob)
    tampered[frame_offset(blob, index) + 30] ^= 1
    start = index * F
    with pytest.raises(IntegrityError):
        read_range(bytes(tampered), max(0, start - 10), min(TOTAL, start + 10))


def test_a_tampered_frame_outside_the_range_does_not_matter(
    read_range: Reader, blob: bytes
) -> None:
    """The documented guarantee: a range proves its own frames, not the whole file."""
    tampered = bytearray(blob)
    tampered[frame_offset(blob, 2) + 30] ^= 1  # frame 2
    tampered[-5] ^= 1  # and the final frame's tag
    assert read_range(bytes(tampered), 3 * F, 9 * F).data == DATA[3 * F : 9 * F]


def test_a_truncated_file_serves_intact_frames_and_fails_where_it_was_cut(
    read_range: Reader, blob: bytes
) -> None:
    cut = blob[: len(blob) - REGULAR]  # the layout now puts the "final frame" at frame 9
    assert read_range(cut, 0, 5 * F).data == DATA[: 5 * F]
    with pytest.raises(IntegrityError):
        read_range(cut, 8 * F, 9 * F + 1)
    with pytest.raises(IntegrityError, match="does not fit"):
        read_range(blob[:-40], 0, 10)  # 37 - 40 < 0: the last 156-byte slot is short


def test_frames_swapped_in_place_fail(read_range: Reader, blob: bytes) -> None:
    a, b = frame_offset(blob, 3), frame_offset(blob, 4)
    swapped = blob[:a] + blob[b : b + REGULAR] + blob[a:b] + blob[b + REGULAR :]
    with pytest.raises(IntegrityError, match="out of order"):
        read_range(swapped, 3 * F, 3 * F + 1)


def test_another_orgs_recording_is_refused_before_any_key_is_asked(
    blob: bytes, keys: CountingKeys
) -> None:
    with pytest.raises(WrongOrg):
        decrypt_range(io.BytesIO(blob), 0, 10, org="other", data_keys=keys)
    assert keys.calls == 0


def test_a_non_framed_recording_is_refused(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey], keys: CountingKeys
) -> None:
    private, public = kek_pair
    esdk = Esdk(esdk_kek_provider(public, private), private, public)
    blob = esdk.encrypt(b"x" * 1000, frame_length=0)
    with pytest.raises(InvalidRequest, match="framed"):
        decrypt_range(io.BytesIO(blob), 0, 10, org=ORG, data_keys=keys)


def test_a_missing_file_is_not_found(tmp_path: Path, keys: CountingKeys) -> None:
    with pytest.raises(NotFound):
        decrypt_range(tmp_path / "nope", 0, 1, org=ORG, data_keys=keys)


# ---------------------------------------------------------------- S3: ranged GETs


@pytest.fixture
def get_ranges(s3: S3Object) -> Iterator[list[dict[str, Any]]]:
    """Every GetObject's parameters, recorded by a botocore event hook on the client."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    s3.client.meta.events.register("provide-client-params.s3.GetObject", record)
    yield seen
    s3.client.meta.events.unregister("provide-client-params.s3.GetObject", record)


def requested(params: dict[str, Any]) -> int:
    first, last = params["Range"].removeprefix("bytes=").split("-")
    return int(last) - int(first) + 1


def test_s3_reads_the_header_then_only_the_frames_of_the_range(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey],
    keys: CountingKeys,
    s3: S3Object,
    get_ranges: list[dict[str, Any]],
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    blob = encrypt(data, kek_pair[1], frame_length=4096)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key, Body=blob)
    start = 2_900_000
    part = decrypt_range(s3, start, start + 10_000, org=ORG, data_keys=keys)
    assert part.data == data[start : start + 10_000]
    assert [p["Range"].startswith("bytes=0-") for p in get_ranges] == [True, False]
    assert requested(get_ranges[0]) == HEADER_PROBE_BYTES
    # 10,000 bytes at offset 2.9 MB: 3 or 4 frames of 4 KiB, not the 2.9 MB before them.
    assert 10_000 < requested(get_ranges[1]) <= 4 * (4096 + 28)
    assert get_ranges[1]["IfMatch"] == s3.client.head_object(Bucket=s3.bucket, Key=s3.key)["ETag"]


def test_s3_a_long_header_costs_one_more_get(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey],
    keys: CountingKeys,
    s3: S3Object,
    get_ranges: list[dict[str, Any]],
) -> None:
    metadata = {f"kmsbridge:note-{i}": "n" * 900 for i in range(6)}  # a ~6 KiB header
    blob = encrypt(DATA, kek_pair[1], metadata=metadata)
    assert header_bytes(blob) > HEADER_PROBE_BYTES
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key, Body=blob)
    assert decrypt_range(s3, 5, 300, org=ORG, data_keys=keys).data == DATA[5:300]
    assert len(get_ranges) == 3


def test_s3_an_object_replaced_while_read_fails(
    kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey],
    keys: CountingKeys,
    s3: S3Object,
) -> None:
    data = os.urandom(20_000)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key, Body=encrypt(data, kek_pair[1]))
    other = encrypt(data, kek_pair[1])

    def replace_after_first_get(**_: Any) -> None:
        s3.client.meta.events.unregister("after-call.s3.GetObject", replace_after_first_get)
        s3.client.put_object(Bucket=s3.bucket, Key=s3.key, Body=other)

    s3.client.meta.events.register("after-call.s3.GetObject", replace_after_first_get)
    with pytest.raises(IntegrityError, match="changed"):
        decrypt_range(s3, 10_000, 10_001, org=ORG, data_keys=keys)  # beyond the first GET


def test_s3_missing_object_is_not_found(s3: S3Object, keys: CountingKeys) -> None:
    with pytest.raises(NotFound):
        decrypt_range(s3, 0, 1, org=ORG, data_keys=keys)


# ---------------------------------------------------------------- CLI


def test_cli_decrypt_range_writes_only_the_range(world: World, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "call.esdk"
    source.write_bytes(world.encrypt(data))
    target = tmp_path / "part.wav"
    argv = ["--table", world.store.table, "decrypt", "--org", world.org]
    assert main([*argv, "--range", "100000-200001", str(source), str(target)]) == 0
    assert target.read_bytes() == data[100_000:200_001]


def test_cli_decrypt_range_errors_leave_no_output(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = bytearray(world.encrypt(os.urandom(300_000)))
    blob[header_bytes(bytes(blob)) + 40] ^= 1  # the first frame: "0-10" fails to authenticate
    source = tmp_path / "call.esdk"
    source.write_bytes(bytes(blob))
    target = tmp_path / "part.wav"
    argv = ["--table", world.store.table, "decrypt", "--org", world.org, "--range"]
    for text, status in [("10-5", 2), ("5", 2), ("a-b", 2), ("300001-", 2), ("0-10", 5)]:
        assert main([*argv, text, str(source), str(target)]) == status, text
        assert capsys.readouterr().err.startswith("error: ")
        assert list(tmp_path.iterdir()) == [source]
