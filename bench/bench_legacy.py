"""Legacy playback: decrypting a 256 MiB PKCS#7 file, kmsbridge against ``openssl smime``.

The same file (``openssl smime -encrypt -binary -outform DER -aes-256-cbc``, RSA-2048) is
decrypted in the same run by ``openssl smime -decrypt -inform DER -binary`` and by
``kmsbridge.legacy.playback.decrypt_cms_file`` with the key imported and wrapped under a KMS key
(moto in process; the decryptor's cache is off, so every run unwraps the KEK through KMS).
Also reported: memory. openssl reads the whole file into memory (its max RSS); kmsbridge
streams it in 1 MiB chunks (the peak that Python's allocator saw during one decrypt).

    python -m bench.bench_legacy [--quick]
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bench.common import Result, best_of

SECTION = "Legacy PKCS#7 playback"
MIB = 1024 * 1024


def run(quick: bool = False) -> list[Result]:
    size = (16 if quick else 256) * MIB
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="kmsbridge-bench-legacy-") as tmp:
        folder = Path(tmp)
        cert, key, digest = _make_files(folder, size)
        p7m = folder / "recording.p7m"
        openssl_time = best_of(repeats, lambda: _openssl_decrypt(folder, p7m, cert, key))
        openssl_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        ours_time, ours_rss = _ours(folder, p7m, cert, key, repeats, digest)
    speed = openssl_time / ours_time
    return [
        Result(
            SECTION,
            f"decrypt {size // MIB} MiB PKCS#7 (AES-256-CBC, RSA-2048)",
            f"{size / ours_time / 1e9:.2f} GB/s ({ours_time * 1000:.0f} ms, KMS unwrap included)",
            f"openssl smime -decrypt {size / openssl_time / 1e9:.2f} GB/s "
            f"({openssl_time * 1000:.0f} ms)",
            round(speed, 2),
            ">= 1.0x",
        ),
        Result(
            SECTION,
            f"peak memory decrypting {size // MIB} MiB PKCS#7",
            f"{ours_rss / MIB:.1f} MiB peak allocated by the decrypt (streaming)",
            f"openssl smime -decrypt {openssl_rss / MIB:.0f} MiB max RSS",
            None,
            "",
        ),
    ]


def _make_files(folder: Path, size: int) -> tuple[Path, Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench recorder")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    digest = hashlib.sha256()
    with open(folder / "plain.bin", "wb") as out:
        for _ in range(size // (16 * MIB)):
            chunk = os.urandom(16 * MIB)
            digest.update(chunk)
            out.write(chunk)
    subprocess.run(
        ["openssl", "smime", "-encrypt", "-binary", "-outform", "DER", "-aes-256-cbc",
         "-in", str(folder / "plain.bin"), "-out", str(folder / "recording.p7m"), str(cert)],
        check=True,
    )  # fmt: skip
    (folder / "plain.bin").unlink()
    return cert, key_file, digest.hexdigest()


def _openssl_decrypt(folder: Path, p7m: Path, cert: Path, key: Path) -> None:
    subprocess.run(
        ["openssl", "smime", "-decrypt", "-inform", "DER", "-binary", "-in", str(p7m),
         "-out", str(folder / "openssl.out"), "-recip", str(cert), "-inkey", str(key)],
        check=True,
    )  # fmt: skip


def _ours(
    folder: Path, p7m: Path, cert: Path, key: Path, repeats: int, digest: str
) -> tuple[float, int]:
    from moto import mock_aws

    from kmsbridge.aws import AwsClients, AwsSettings
    from kmsbridge.decryptor.decryptor import Decryptor
    from kmsbridge.keys.kms import KekWrapper
    from kmsbridge.keys.table import KeyStore
    from kmsbridge.legacy.import_key import import_key_pair
    from kmsbridge.legacy.playback import decrypt_cms_file
    from kmsbridge.lifecycle.rotation import create_org

    with mock_aws():
        clients = AwsClients(AwsSettings(region="us-east-1"))
        arn = clients.client("kms").create_key()["KeyMetadata"]["Arn"]
        store = KeyStore(clients.client("dynamodb"), "bench-keks")
        store.create_table()
        wrapper = KekWrapper(clients)
        create_org(store, wrapper, "bench", [arn])
        import_key_pair(
            store,
            wrapper,
            "bench",
            certificate_pem=cert.read_bytes(),
            private_key_pem=key.read_bytes(),
        )
        decryptor = Decryptor(store, wrapper, max_age=0)
        out = folder / "ours.out"
        elapsed = best_of(
            repeats, lambda: decrypt_cms_file(p7m, out, org="bench", decryptor=decryptor)
        )
        tracemalloc.start()  # one more run, untimed, for the peak of what Python allocates
        decrypt_cms_file(p7m, out, org="bench", decryptor=decryptor)
        added = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if _sha256(out) != digest or _sha256(folder / "openssl.out") != digest:
        raise SystemExit("bench_legacy: a decryption does not match the plaintext")
    return elapsed, added


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        ratio = f"{result.ratio}x" if result.ratio is not None else ""
        print(f"{result.name}: {result.measured} | {result.baseline} | {ratio} {result.goal}")
