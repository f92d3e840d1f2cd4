"""The progress bar: drawn on a terminal, absent in pipes; a folder encrypted under a pty."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kmsbridge.cli.progress import Progress
from kmsbridge.crypto.certificates import build_ca_certificate, build_kek_certificate, pem_chain
from kmsbridge.crypto.kek import KekPublicKey


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(3, "encrypted", stream=stream) as bar:
        for name in ("a", "b", "c"):
            bar.advance(name)
    assert stream.getvalue() == ""


def test_draws_clears_and_lets_results_through_on_a_terminal() -> None:
    stream, clock = Tty(), [0.0]
    results = io.StringIO()
    with Progress(4, "encrypted", stream=stream, now=lambda: clock[0]) as bar:
        bar.advance("a.wav")  # within 0.1 s of the first draw: not redrawn
        assert "a.wav" not in stream.getvalue()
        clock[0] = 1.0
        bar.advance("b.wav")
        assert "encrypted [" in stream.getvalue() and "2/4 b.wav" in stream.getvalue()
        bar.print("ok  b.wav", file=results)
    assert results.getvalue() == "ok  b.wav\n"
    assert stream.getvalue().endswith("\r")  # the bar is wiped at the end


def test_render_fits_the_width() -> None:
    bar = Progress(10, "decrypted", enabled=True)
    bar.done, bar.note = 5, "x" * 500
    line = bar.render(60)
    assert len(line) == 59 and line.startswith("decrypted [") and "5/10" in line


def write_bundle(path: Path, org: str, kek: tuple[rsa.RSAPrivateKey, KekPublicKey]) -> Path:
    """A PEM bundle for ``kek`` from a local CA (a P-384 key here, KMS in production); the
    CA's certificate, to pin with ``--ca``, is written beside it and its path returned."""
    ca_key = ec.generate_private_key(ec.SECP384R1())

    def sign(tbs: bytes) -> bytes:
        return ca_key.sign(tbs, ec.ECDSA(hashes.SHA384()))

    spki = ca_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    now = datetime.now(UTC)
    day = timedelta(days=1)
    ca = build_ca_certificate(
        spki, name="test CA", not_before=now - day, not_after=now + 99 * day, sign=sign
    )
    certificate = build_kek_certificate(
        kek[1].spki_der, org=org, ca=ca, not_before=now - day, not_after=now + 90 * day, sign=sign
    )
    path.write_bytes(pem_chain([certificate, ca]))
    ca_file = path.with_name(path.name + ".ca.pem")
    ca_file.write_bytes(pem_chain([ca]))
    return ca_file


def encrypt_folder(
    tmp_path: Path, kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey], stderr: int
) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"call-{i}.wav").write_bytes(os.urandom(1000))
    ca_file = write_bundle(tmp_path / "bundle.json", "acme", kek_pair)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kmsbridge.cli.main",
            "encrypt",
            "--org",
            "acme",
            "--public-keys",
            str(tmp_path / "bundle.json"),
            "--ca",
            str(ca_file),
            str(tmp_path / "in"),
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        timeout=60,
    )


def test_a_folder_shows_the_bar_on_a_terminal_only(
    tmp_path: Path, kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey]
) -> None:
    (tmp_path / "piped").mkdir()
    piped = encrypt_folder(tmp_path / "piped", kek_pair, subprocess.PIPE)
    assert piped.returncode == 0 and piped.stderr == b""
    assert piped.stdout.count(b"ok      ") == 3

    (tmp_path / "tty").mkdir()
    leader, follower = pty.openpty()
    try:
        done = encrypt_folder(tmp_path / "tty", kek_pair, follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the writer side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0 and done.stdout.count(b"ok      ") == 3
    assert b"encrypted [" in seen and b"/3" in seen
