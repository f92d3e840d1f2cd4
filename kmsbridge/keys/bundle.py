"""Public-key bundles: what an encryptor that cannot reach AWS needs, and nothing secret.

A bundle is the active KEK's X.509 certificate followed by its chain, PEM (DESIGN.md
"Public-key bundle"), so ``openssl verify -CAfile ca.pem -untrusted bundle.pem bundle.pem``
checks it with no kmsbridge at all. Reading one verifies it against the CAs the encryptor
pinned (``crypto/trust.py``): the chain, every signature, the dates, the org, the KEK id and
the key usage. A bundle brings its own chain but never its own trust.
"""

from __future__ import annotations

import os
from datetime import datetime

from kmsbridge.clock import utcnow
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.trust import (
    PROCESS_CACHE,
    TrustAnchors,
    VerificationCache,
    verify_kek_certificate,
)
from kmsbridge.errors import InvalidRequest
from kmsbridge.files import atomic_output

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
# Bounds what an encryptor reads: a KEK certificate and a few issuers are a few KiB.
MAX_BUNDLE_BYTES = 64 * 1024


def write_bundle(pem: bytes, path: str | os.PathLike[str], *, replace: bool = True) -> None:
    """Write the PEM bundle whole; with ``replace=False`` an existing file is refused."""
    with atomic_output(path, replace=replace) as out:
        out.write(pem)


def read_bundle(
    path: str | os.PathLike[str],
    org: str,
    *,
    trust: TrustAnchors,
    now: datetime | None = None,
    cache: VerificationCache | None = PROCESS_CACHE,
) -> KekPublicKey:
    """The KEK public key of a bundle for ``org``, only if its certificate checks out."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise InvalidRequest(f"cannot read the public-key bundle {path}: {exc.strerror}") from None
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidRequest(f"{path} is larger than a public-key bundle can be")
    if data.lstrip().startswith(b"{"):
        raise InvalidRequest(
            f"{path} is a version-1 JSON bundle; bundles are certificate chains now: "
            f"write a new one with kmsbridge keys public {org}"
        )
    verified = verify_kek_certificate(data, org=org, trust=trust, now=now or utcnow(), cache=cache)
    return KekPublicKey.from_der(verified.spki_der)
