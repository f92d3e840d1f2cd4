"""The PGP export target: recordings encrypted to a customer's OpenPGP certificate.

What ``gpg --decrypt`` reads: a binary OpenPGP message (RFC 4880 / RFC 9580) made by
pysequoia, the Python binding of Sequoia-PGP (manylinux wheels for CPython 3.11 to 3.13 on
x86_64 and aarch64, so it runs in the jobs Lambda). Sequoia picks the packets from the
recipient's certificate: a public-key encrypted session key for each encryption-capable,
live subkey and, for the keys GnuPG makes, a symmetrically encrypted integrity-protected
data packet (AES with the MDC); certificates that advertise it get SEIPD v2 (AEAD).

Streaming, so memory stays bounded whatever a recording's size: pysequoia's ``encrypt``
takes and returns whole byte strings, and its ``encrypt_file`` holds the GIL while it
reads, so no thread of this process could feed it through a pipe. A child interpreter
runs ``encrypt_file`` from its stdin (a pipe) to a file in a private temporary folder:
this process writes each frame's plaintext into the pipe only after the frame
authenticated, and the file receives ciphertext only. Plaintext never touches disk; the
folder holds one recording's ciphertext at a time. If decryption fails part way, the
child is killed and its file removed: nothing of that recording is published.

The recipient is checked before any recording is read: exactly one certificate, public
parts only (a secret key is refused, never stored), not revoked, not expired, with an
encryption subkey that is neither expired nor revoked, and that Sequoia's standard policy
accepts (a trial encryption of nothing).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

from kmsbridge.errors import InternalError, InvalidRequest

PGP_SUFFIX = ".pgp"
_KEY_TAGS = ("PublicKey", "PublicSubkey", "SecretKey", "SecretSubkey")
# Runs isolated (-I -S: no environment, no site-packages) with only pysequoia's folder on
# its path: argv = [pysequoia's parent folder, recipient file, output file].
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import pysequoia; "
    "cert = pysequoia.Cert.from_file(sys.argv[2]); "
    "pysequoia.encrypt_file('/proc/self/fd/0', sys.argv[3], recipients=[cert], armor=False)"
)

T = TypeVar("T")


@dataclass(frozen=True)
class PgpRecipient:
    """A checked OpenPGP certificate: its fingerprint and its public packets (binary)."""

    fingerprint: str
    user_ids: tuple[str, ...]
    certificate: bytes = field(repr=False)

    def describe(self) -> dict[str, str]:
        return {"format": "pgp", "pgp_fingerprint": self.fingerprint}


def pgp_recipient(data: bytes, now: datetime | None = None) -> PgpRecipient:
    """The recipient of ``KEY.asc`` (armored or binary), refused unless it can receive now."""
    import pysequoia

    now = now or datetime.now(UTC)
    try:
        certs = pysequoia.Cert.split_bytes(data)
        packets = _packets(data)
    except (RuntimeError, ValueError):
        certs, packets = [], []
    if len(certs) != 1:
        raise InvalidRequest(
            "the PGP recipient must be exactly one OpenPGP public key (gpg --armor --export KEY)"
        )
    cert = certs[0]
    if any(p.tag in ("SecretKey", "SecretSubkey") for p in packets):
        raise InvalidRequest(
            "the PGP recipient file holds a secret key: give the public key "
            "(gpg --armor --export KEY), never the secret one"
        )
    if cert.is_revoked:
        raise InvalidRequest(f"the PGP key {cert.fingerprint} is revoked")
    expiration = cert.expiration
    if expiration is not None and expiration <= now:
        raise InvalidRequest(f"the PGP key {cert.fingerprint} expired on {expiration:%Y-%m-%d}")
    if not _live_encryption_key(packets, now):
        raise InvalidRequest(f"the PGP key {cert.fingerprint} has no live encryption subkey")
    try:
        pysequoia.encrypt(b"", recipients=[cert], armor=False)
    except (RuntimeError, ValueError):
        raise InvalidRequest(
            f"the PGP key {cert.fingerprint} has no encryption key that the OpenPGP "
            "standard policy accepts"
        ) from None
    return PgpRecipient(
        fingerprint=cert.fingerprint.lower(),
        user_ids=tuple(str(u) for u in cert.user_ids),
        certificate=bytes(cert),
    )


def encrypt_to_file(recipient_file: Path, output: Path, feed: Callable[[IO[bytes]], T]) -> T:
    """Run ``feed(pipe)`` (it writes the plaintext) while a child encrypts it to ``output``.

    ``output`` exists afterwards only if ``feed`` returned and the child succeeded.
    """
    command = [
        sys.executable, "-I", "-S", "-c", _CHILD,
        str(_pysequoia_parent()), str(recipient_file), str(output),
    ]  # fmt: skip
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={},
    )
    assert child.stdin is not None
    try:
        result = feed(child.stdin)
        child.stdin.close()
    except BrokenPipeError:
        _abandon(child, output)
        raise InternalError("the OpenPGP encryption stopped early") from None
    except BaseException:
        _abandon(child, output)
        raise
    if child.wait() != 0:
        output.unlink(missing_ok=True)
        raise InternalError("the OpenPGP encryption failed")
    return result


def _abandon(child: subprocess.Popen[bytes], output: Path) -> None:
    child.kill()
    child.wait()
    if child.stdin is not None:
        # The pipe's reader is gone; what was still buffered is dropped on purpose.
        with contextlib.suppress(OSError):
            child.stdin.close()
    output.unlink(missing_ok=True)


def _pysequoia_parent() -> Path:
    import pysequoia

    return Path(os.path.dirname(pysequoia.__file__)).parent


class _Packet(NamedTuple):
    tag: str
    key_created: datetime | None
    encrypts: bool
    validity: timedelta | None
    signature_type: str


def _packets(data: bytes) -> list[_Packet]:
    """What the liveness check reads of each packet of a certificate."""
    from pysequoia.packet import PacketPile

    out = []
    for packet in PacketPile.from_bytes(data):
        flags = packet.key_flags
        kind = packet.signature_type
        out.append(
            _Packet(
                tag=str(packet.tag).rsplit(".", 1)[-1],
                key_created=packet.key_created,
                encrypts=flags is not None
                and (flags.storage_encryption or flags.transport_encryption),
                validity=packet.key_validity_period,
                signature_type=str(kind).rsplit(".", 1)[-1] if kind is not None else "",
            )
        )
    return out


def _live_encryption_key(packets: list[_Packet], now: datetime) -> bool:
    """Whether a key with encryption flags is neither expired nor revoked at ``now``.

    Sequoia verifies the signatures when it encrypts; this catches what pysequoia's
    fallback would otherwise accept, an expired subkey (it encrypts to one when no live
    one is left), by reading each key's last self-signature with key flags.
    """
    live: dict[int, bool] = {}
    index, created = -1, None
    for packet in packets:
        if packet.tag in _KEY_TAGS:
            index, created = index + 1, packet.key_created
        elif packet.tag == "Signature" and index >= 0:
            if packet.signature_type in ("SubkeyRevocation", "KeyRevocation"):
                live[index] = False
            elif packet.encrypts and live.get(index) is not False:
                validity = packet.validity
                live[index] = validity is None or (created is not None and created + validity > now)
            elif packet.signature_type == "SubkeyBinding" and live.get(index) is not False:
                live[index] = False  # a newer binding without encryption flags
    return any(live.values())
