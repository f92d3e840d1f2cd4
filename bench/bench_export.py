"""PGP export: one recording re-encrypted for an OpenPGP key, against a plain decrypt.

The same recording (64 MiB, the codec's frames) is, in one run, (a) decrypted into a sink
that only hashes it (the baseline: what any export costs at least), (b) exported to a zip
for a GnuPG-made recipient key (Ed25519 + Curve25519, so Sequoia writes AES-256 with the
MDC) through ``export_archive`` (streamed through the pysequoia child), and (c) exported
for an X.509 certificate (CMS, the in-memory target). moto in process; the decryptor's
cache is on, so the KMS unwrap happens once, before the timed runs. Also reported: the
peak of what Python allocates during each export (tracemalloc; the child interpreter's
own memory is its max RSS, reported beside it).

    python -m bench.bench_export [--quick]
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import MIB, Result, best_of

SECTION = "PGP export"


def run(quick: bool = False) -> list[Result]:
    if shutil.which("gpg") is None:
        raise SystemExit("bench_export needs the gpg binary")
    size = (8 if quick else 64) * MIB
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="kmsbridge-bench-export-") as tmp:
        return _run(Path(tmp), size, repeats)


def _run(folder: Path, size: int, repeats: int) -> list[Result]:
    from moto import mock_aws

    from kmsbridge.aws import AwsClients, AwsSettings
    from kmsbridge.crypto.kek import KekPublicKey
    from kmsbridge.decryptor.decryptor import Decryptor
    from kmsbridge.export.archive import certificate_target, export_archive, pgp_target
    from kmsbridge.keys.kms import KekWrapper
    from kmsbridge.keys.table import KeyStore
    from kmsbridge.lifecycle.rotation import create_org
    from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream

    pgp = pgp_target(_gpg_public_key(folder))
    cms = certificate_target(_certificate())
    with mock_aws():
        clients = AwsClients(AwsSettings(region="us-east-1"))
        arn = clients.client("kms").create_key()["KeyMetadata"]["Arn"]
        store = KeyStore(clients.client("dynamodb"), "bench-keks")
        store.create_table()
        wrapper = KekWrapper(clients)
        _, kek = create_org(store, wrapper, "bench", [arn])
        decryptor = Decryptor(store, wrapper, max_age=3600)
        recording = folder / "call.enc"
        with open(recording, "wb") as out:
            encrypt_stream(
                io.BytesIO(os.urandom(size)), out, org="bench", recording_id="call",
                public_key=KekPublicKey.from_der(kek.public_key),
            )  # fmt: skip

        def plain() -> None:
            with open(recording, "rb") as src:
                decrypt_stream(src, _Null(), org="bench", data_keys=decryptor)

        def export(target: Any) -> Callable[[], object]:
            return lambda: export_archive(
                "bench", [recording], folder / "out.zip", decryptor=decryptor, target=target
            )

        plain()  # unwraps the KEK through KMS once; the timed runs use the cache
        base = best_of(repeats, plain)
        pgp_time = best_of(repeats, export(pgp))
        cms_time = best_of(repeats, export(cms))
        pgp_peak, cms_peak = _peak(export(pgp)), _peak(export(cms))
        child_rss = _child_rss(folder, pgp.pgp.certificate if pgp.pgp else b"", size)
    mb = size / MIB

    def rate(seconds: float) -> str:
        return f"{size / seconds / 1e6:.0f} MB/s ({seconds * 1000:.0f} ms)"

    return [
        Result(SECTION, f"export {mb:.0f} MiB for an OpenPGP key (pysequoia, streamed)",
               rate(pgp_time), f"plain decrypt {rate(base)}", round(base / pgp_time, 2), ""),
        Result(SECTION, f"export {mb:.0f} MiB for an X.509 certificate (CMS, in memory)",
               rate(cms_time), f"plain decrypt {rate(base)}", round(base / cms_time, 2), ""),
        Result(SECTION, f"peak memory exporting {mb:.0f} MiB for an OpenPGP key",
               f"{pgp_peak / MIB:.1f} MiB in Python + child max RSS {child_rss / MIB:.0f} MiB",
               f"CMS {cms_peak / MIB:.1f} MiB", round(pgp_peak / cms_peak, 3), ""),
    ]  # fmt: skip


class _Null:
    def write(self, chunk: Any) -> int:
        return len(chunk)


def _child_rss(folder: Path, certificate: bytes, size: int) -> int:
    """The encrypting child's max RSS for ``size`` bytes, started from a small interpreter:
    a process forked from this big one would count the pages it shared before exec."""
    from kmsbridge.export.pgp import _CHILD, _pysequoia_parent

    (folder / "recipient.pgp").write_bytes(certificate)
    (folder / "plain").write_bytes(os.urandom(size))
    command = [sys.executable, "-I", "-S", "-c", _CHILD, str(_pysequoia_parent()),
               str(folder / "recipient.pgp"), str(folder / "child.pgp")]  # fmt: skip
    plain = str(folder / "plain")
    probe = (
        "import resource, subprocess, sys; "
        f"subprocess.run(sys.argv[1:], stdin=open({plain!r}, 'rb'), check=True, env={{}}); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, *command], capture_output=True, check=True
    )
    return int(out.stdout) * 1024


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gpg_public_key(folder: Path) -> bytes:
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run([*gpg, "--quick-gen-key", "Bench <bench@example.com>", "default",
                        "default", "never"], env=env, check=True, capture_output=True)  # fmt: skip
        return subprocess.run([*gpg, "--armor", "--export", "bench@example.com"],
                              env=env, check=True, capture_output=True).stdout  # fmt: skip
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _certificate() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench recipient")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
