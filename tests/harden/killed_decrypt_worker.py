"""A decryption killed mid-way, run as a subprocess by tests/harden/test_killed_decrypt.py.

``python -m tests.harden.killed_decrypt_worker DIR unnamed|named`` decrypts a recording
into DIR/out.wav from a pipe that delivers only its first half and then stalls: the
decryption has written plaintext and waits for more, until the test SIGKILLs it. ``named``
turns O_TMPFILE off, as on a filesystem without it (a named ``.part`` file is used).
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path

from kmsbridge import files
from kmsbridge.crypto.kek import generate_kek
from kmsbridge.recordings.codec import decrypt_file, encrypt_stream, private_key_data_keys

ORG = "acme"
PLAINTEXT = b"the customer's call audio, in clear. " * 100_000  # 3.7 MB


def main(directory: Path, mode: str) -> None:
    if mode == "named":
        files._O_TMPFILE = 0
    private, public = generate_kek()
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(PLAINTEXT), sealed, public_key=public, org=ORG, recording_id="r")
    read_end, write_end = os.pipe()

    def feed_half_then_stall() -> None:
        half = memoryview(sealed.getvalue())[: len(sealed.getvalue()) // 2]
        while half:  # the pipe is drained as the decryption reads it
            half = half[os.write(write_end, half) :]
        while True:
            time.sleep(60)

    threading.Thread(target=feed_half_then_stall, daemon=True).start()
    decrypt_file(
        f"/proc/self/fd/{read_end}",
        directory / "out.wav",
        org=ORG,
        data_keys=private_key_data_keys(private),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
