"""The progress bar: drawn on a terminal, absent in pipes; a folder encrypted under a pty."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.cli.progress import Progress
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


def write_bundle(path: Path, org: str, kek: tuple[rsa.RSAPrivateKey, KekPublicKey]) -> None:
    public = kek[1]
    path.write_text(
        json.dumps(
            {
                "kmsbridge_bundle": 1,
                "org": org,
                "kek": public.kek_id,
                "public_key": base64.b64encode(public.spki_der).decode(),
                "not_after": "2099-01-01T00:00:00Z",
            }
        )
    )


def encrypt_folder(
    tmp_path: Path, kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey], stderr: int
) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"call-{i}.wav").write_bytes(os.urandom(1000))
    write_bundle(tmp_path / "bundle.json", "acme", kek_pair)
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
