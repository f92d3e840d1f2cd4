"""The real ``gpg`` binary in a private GNUPGHOME made at test time: recipients' keys
(never committed), exported public and secret keys, and ``gpg --decrypt``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

GPG = shutil.which("gpg")
needs_gpg = pytest.mark.skipif(GPG is None, reason="machine lacks the gpg binary")


class GnuPG:
    """One temporary keyring; every call runs gpg in batch mode with no passphrase."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str, input: bytes | None = None) -> bytes:
        result = subprocess.run(
            [str(GPG), "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args],
            input=input,
            capture_output=True,
            env={**os.environ, "GNUPGHOME": str(self.home)},
            check=False,
        )
        if result.returncode != 0:
            raise GpgFailed(result.stderr.decode(errors="replace"))
        return result.stdout

    def generate(
        self, uid: str, algo: str = "default", expire: str = "never", at: str | None = None
    ) -> str:
        """A new key (``default``: Ed25519 with a Curve25519 encryption subkey)."""
        faked = ["--faked-system-time", at] if at else []
        self.run(*faked, "--quick-gen-key", uid, algo, "default", expire)
        return self.fingerprint(uid)

    def add_encryption_subkey(
        self, fingerprint: str, algo: str, expire: str = "never", at: str | None = None
    ) -> None:
        faked = ["--faked-system-time", at] if at else []
        self.run(*faked, "--quick-add-key", fingerprint, algo, "encr", expire)

    def fingerprint(self, uid: str) -> str:
        out = self.run("--with-colons", "--list-keys", uid).decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))

    def public(self, fingerprint: str) -> bytes:
        return self.run("--armor", "--export", fingerprint)

    def secret(self, fingerprint: str) -> bytes:
        return self.run("--armor", "--export-secret-keys", fingerprint)

    def revoke(self, fingerprint: str) -> None:
        """Import the revocation certificate gpg made with the key."""
        text = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        self.run("--import", input=text.replace(":-----BEGIN", "-----BEGIN").encode())

    def decrypt(self, path: Path) -> bytes:
        return self.run("--decrypt", str(path))


class GpgFailed(Exception):
    pass


@contextmanager
def gnupg_home() -> Iterator[GnuPG]:
    """A short GNUPGHOME under /tmp (the agent's socket path must stay short); the agent
    is stopped and the folder removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
    try:
        yield GnuPG(home)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)
