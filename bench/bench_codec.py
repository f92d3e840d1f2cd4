"""The recording codec against a plain AES-256-GCM loop and the official ESDK, on files.

(Memory and range decryption: bench_memory.py.)

Every contender streams the same plaintext file to a file in the same directory (tmpfs
by default, see ``common.bench_root``), so I/O is the same for all. Runs are interleaved
and the best of several is kept, which matters on a shared machine.
"""

from __future__ import annotations

import functools
import io
import os
import time
from pathlib import Path
from typing import Any

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import (
    KIB,
    MIB,
    Result,
    bench_kek,
    best_of,
    fmt_rate,
    fmt_size,
    gb_per_s,
    wall_and_cpu,
    workdir,
    write_random_file,
)
from kmsbridge.crypto.message import frame_iv
from kmsbridge.formats import CONTEXT_ORG, CONTEXT_RECORDING, FRAME_LENGTH
from kmsbridge.integrations.esdk import esdk_kek_provider
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream, private_key_data_keys

ORG = "bench"
CONTEXT = {CONTEXT_ORG: ORG, CONTEXT_RECORDING: "bench-1"}
CPU = time.process_time  # steadier than wall time on a shared machine (common.wall_and_cpu)
ESDK_DEFAULT_FRAME = 4 * KIB
ESDK_BEST_FRAME = MIB
SWEEP_FRAMES = (16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB)


def run(quick: bool = False) -> list[Result]:
    size = 32 * MIB if quick else 256 * MIB
    repeats = 1 if quick else 3
    bench_kek()  # the RSA key generation is not part of any timing
    with workdir() as d:
        plain = write_random_file(d / "plain", size)
        results = throughput(d, plain, size, repeats, quick)
        results += in_memory_vs_esdk(16 * MIB if quick else 128 * MIB, repeats)
        if not quick:
            results += frame_sweep(d, plain, 128 * MIB, repeats=2)
    return results


# ---------------------------------------------------------------- contenders


def ours_encrypt(src: Path, dst: Path, frame_length: int = FRAME_LENGTH) -> None:
    _, public = bench_kek()
    with open(src, "rb") as s, open(dst, "wb") as o:
        encrypt_stream(
            s, o, public_key=public, org=ORG, recording_id="bench-1", frame_length=frame_length
        )


def ours_decrypt(src: Path, dst: Path) -> None:
    with open(src, "rb") as s, open(dst, "wb") as o:
        decrypt_stream(s, o, org=ORG, data_keys=cached_data_keys())


@functools.cache
def cached_data_keys() -> Any:
    """The private key's data-key source behind a cache, as the decryptor's data-key cache."""
    return functools.cache(private_key_data_keys(bench_kek()[0]))


_AEAD = AESGCM(os.urandom(32))


def aes_gcm_encrypt(src: Path, dst: Path, chunk: int) -> None:
    """The floor: read a chunk, AES-256-GCM it into a preallocated buffer, write it."""
    buf, out, seq = memoryview(bytearray(chunk)), memoryview(bytearray(chunk + 16)), 0
    with open(src, "rb", buffering=0) as s, open(dst, "wb", buffering=0) as o:
        while n := s.readinto(buf):
            seq += 1
            _AEAD.encrypt_into(frame_iv(seq), buf[:n], b"", out[: n + 16])
            o.write(out[: n + 16])


def aes_gcm_decrypt(src: Path, dst: Path, chunk: int) -> None:
    buf, out, seq = memoryview(bytearray(chunk + 16)), memoryview(bytearray(chunk)), 0
    with open(src, "rb", buffering=0) as s, open(dst, "wb", buffering=0) as o:
        while n := s.readinto(buf):
            seq += 1
            _AEAD.decrypt_into(frame_iv(seq), buf[:n], b"", out[: n - 16])
            o.write(out[: n - 16])


@functools.cache
def _esdk() -> tuple[Any, Any]:
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    private, public = bench_kek()
    return client, esdk_kek_provider(public, private)


def esdk_encrypt(src: Path, dst: Path, frame_length: int) -> None:
    """The official SDK in stream mode, reading one frame at a time (its fastest way)."""
    client, provider = _esdk()
    with (
        open(src, "rb") as s,
        open(dst, "wb") as o,
        client.stream(
            mode="e",
            source=s,
            key_provider=provider,
            encryption_context=CONTEXT,
            algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
            frame_length=frame_length,
        ) as stream,
    ):
        while chunk := stream.read(frame_length):
            o.write(chunk)


def esdk_decrypt(src: Path, dst: Path, frame_length: int) -> None:
    client, provider = _esdk()
    with (
        open(src, "rb") as s,
        open(dst, "wb") as o,
        client.stream(mode="d", source=s, key_provider=provider) as stream,
    ):
        while chunk := stream.read(frame_length):
            o.write(chunk)


# ---------------------------------------------------------------- throughput


def throughput(d: Path, plain: Path, size: int, repeats: int, quick: bool) -> list[Result]:
    enc, out, f = d / "enc", d / "out", FRAME_LENGTH
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> None:
        w, c = wall_and_cpu(fn, *args)
        wall[name], cpu[name] = min(wall.get(name, w), w), min(cpu.get(name, c), c)

    for _ in range(repeats):  # interleaved, so a busy moment hurts all contenders alike
        timed("copy", copy_file, plain, out, f)
        timed("aes-enc", aes_gcm_encrypt, plain, enc, f)
        timed("aes-dec", aes_gcm_decrypt, enc, out, f)
        timed("ours-enc", ours_encrypt, plain, enc)
        timed("ours-dec", ours_decrypt, enc, out)
    for frame in (ESDK_DEFAULT_FRAME, ESDK_BEST_FRAME):
        for _ in range(1 if quick or frame == ESDK_DEFAULT_FRAME else 2):
            timed(f"esdk-enc-{frame}", esdk_encrypt, plain, enc, frame)
            timed(f"esdk-dec-{frame}", esdk_decrypt, enc, out, frame)

    def row(label: str, ours: str, base: str, what: str, goal: str) -> Result:
        return Result(
            "codec, files",
            label,
            f"{fmt_rate(size, cpu[ours])} (wall {fmt_rate(size, wall[ours])})",
            f"{what}: {fmt_rate(size, cpu[base])} (wall {fmt_rate(size, wall[base])})",
            cpu[base] / cpu[ours],
            goal,
        )

    results = []
    for op, verb in (("enc", "encrypt"), ("dec", "decrypt")):
        label = f"{verb} {fmt_size(size)}, {fmt_size(f)} frames"
        results.append(row(label, f"ours-{op}", f"aes-{op}", "plain AES-GCM loop", ">= 0.6x"))
        best, default = f"esdk-{op}-{ESDK_BEST_FRAME}", f"esdk-{op}-{ESDK_DEFAULT_FRAME}"
        results.append(row(label, f"ours-{op}", best, "ESDK, 1 MiB frames", ">= 5x"))
        results.append(row(label, f"ours-{op}", default, "ESDK, 4 KiB frames (default)", ""))
    results.append(
        row(
            "copy, no crypto: the I/O ceiling of any codec",
            "copy",
            f"esdk-dec-{ESDK_BEST_FRAME}",
            "ESDK decrypt, 1 MiB frames",
            "",
        )
    )
    return results


def copy_file(src: Path, dst: Path, chunk: int) -> None:
    """No crypto at all: the ceiling any codec reaches on these files."""
    buf = memoryview(bytearray(chunk))
    with open(src, "rb", buffering=0) as s, open(dst, "wb", buffering=0) as o:
        while n := s.readinto(buf):
            o.write(buf[:n])


def in_memory_vs_esdk(size: int, repeats: int) -> list[Result]:
    """The codecs' own cost: from bytes in memory to a sink that drops them."""
    data = os.urandom(size)
    enc, dec = _in_memory(data, FRAME_LENGTH, repeats)
    client, provider = _esdk()
    blob = io.BytesIO()
    t_enc = best_of(
        repeats, lambda: _esdk_stream(client, provider, "e", data, ESDK_BEST_FRAME, blob), CPU
    )
    blob_bytes = blob.getvalue()
    t_dec = best_of(
        repeats,
        lambda: _esdk_stream(client, provider, "d", blob_bytes, ESDK_BEST_FRAME, None),
        CPU,
    )
    aes_enc, aes_dec = _aes_in_memory(data, FRAME_LENGTH, repeats)
    rows = [
        Result(
            "codec, in memory",
            f"{verb} {fmt_size(size)}, {fmt_size(FRAME_LENGTH)} frames (CPU only)",
            f"{ours:.2f} GB/s",
            f"ESDK, 1 MiB frames: {gb_per_s(size, t):.2f} GB/s",
            ours / gb_per_s(size, t),
            ">= 5x",
        )
        for verb, ours, t in (("encrypt", enc, t_enc), ("decrypt", dec, t_dec))
    ]
    for verb, aes, t in (("encrypt", aes_enc, t_enc), ("decrypt", aes_dec, t_dec)):
        rows.append(
            Result(
                "codec, in memory",
                f"plain AES-GCM loop, {verb}, {fmt_size(FRAME_LENGTH)} chunks: the ceiling",
                f"{aes:.2f} GB/s",
                f"ESDK, 1 MiB frames: {gb_per_s(size, t):.2f} GB/s",
                aes / gb_per_s(size, t),
                "",
            )
        )
    return rows


def _aes_in_memory(data: bytes, chunk: int, repeats: int) -> tuple[float, float]:
    """AES-256-GCM over memory in chunks, into a preallocated buffer: nothing else."""
    chunks = -(-len(data) // chunk)
    view, out = memoryview(data), memoryview(bytearray(len(data) + 16 * chunks))

    def encrypt() -> None:
        at = 0
        for seq, offset in enumerate(range(0, len(view), chunk), 1):
            piece = view[offset : offset + chunk]
            _AEAD.encrypt_into(frame_iv(seq), piece, b"", out[at : at + len(piece) + 16])
            at += len(piece) + 16

    encrypt()
    sealed, plain = bytes(out), memoryview(bytearray(chunk))

    def decrypt() -> None:
        for seq, offset in enumerate(range(0, len(sealed), chunk + 16), 1):
            piece = sealed[offset : offset + chunk + 16]
            _AEAD.decrypt_into(frame_iv(seq), piece, b"", plain[: len(piece) - 16])

    t_enc, t_dec = best_of(repeats, encrypt, CPU), best_of(repeats, decrypt, CPU)
    return gb_per_s(len(data), t_enc), gb_per_s(len(data), t_dec)


def _esdk_stream(client: Any, provider: Any, mode: str, data: bytes, frame: int, sink: Any) -> None:
    extra = (
        {
            "encryption_context": CONTEXT,
            "frame_length": frame,
            "algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        }
        if mode == "e"
        else {}
    )
    if sink is not None:
        sink.seek(0)
        sink.truncate()
    with client.stream(mode=mode, source=io.BytesIO(data), key_provider=provider, **extra) as s:
        while chunk := s.read(frame):
            if sink is not None:
                sink.write(chunk)


def frame_sweep(d: Path, plain: Path, size: int, repeats: int) -> list[Result]:
    """Our codec at several frame lengths, on files and in memory (CPU only)."""
    with open(plain, "rb") as s:
        data = s.read(size)
    return [_sweep_one(d, plain, data, frame, repeats) for frame in SWEEP_FRAMES]


def _sweep_one(d: Path, plain: Path, data: bytes, frame: int, repeats: int) -> Result:
    size, enc, out = plain.stat().st_size, d / "enc", d / "out"
    t_enc = t_dec = t_aes = float("inf")
    for _ in range(repeats):  # CPU seconds, as in the codec rows
        t_aes = min(t_aes, wall_and_cpu(aes_gcm_encrypt, plain, enc, frame)[1])
        t_enc = min(t_enc, wall_and_cpu(ours_encrypt, plain, enc, frame)[1])
        t_dec = min(t_dec, wall_and_cpu(ours_decrypt, enc, out)[1])
    cpu_enc, cpu_dec = _in_memory(data, frame, repeats)
    return Result(
        "frame length",
        f"{fmt_size(frame)} frames: encrypt / decrypt, files (128 MiB in memory); "
        f"a 64 KiB seek reads up to {fmt_size((-(-64 * KIB // frame) + 1) * frame)}",
        f"{gb_per_s(size, t_enc):.2f} / {gb_per_s(size, t_dec):.2f} GB/s "
        f"({cpu_enc:.2f} / {cpu_dec:.2f})",
        f"plain AES-GCM loop, same chunk: {fmt_rate(size, t_aes)}",
        t_aes / max(t_enc, t_dec),
        "",
    )


class _Null(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return len(b)


def _in_memory(data: bytes, frame: int, repeats: int) -> tuple[float, float]:
    _, public = bench_kek()
    sink = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data), sink, public_key=public, org=ORG, recording_id="m", frame_length=frame
    )
    blob = sink.getvalue()
    t_enc = best_of(
        repeats,
        clock=CPU,
        fn=lambda: encrypt_stream(
            io.BytesIO(data),
            _Null(),
            public_key=public,
            org=ORG,
            recording_id="m",
            frame_length=frame,
        ),
    )
    keys = cached_data_keys()
    t_dec = best_of(
        repeats,
        lambda: decrypt_stream(io.BytesIO(blob), _Null(), org=ORG, data_keys=keys),
        CPU,
    )
    return gb_per_s(len(data), t_enc), gb_per_s(len(data), t_dec)
