"""KEK certificate checks against the encryptor's other fixed cost, one RSA-OAEP wrap.

Every encryption verifies the KEK certificate (chain to the pinned CA, dates, org, KEK id,
key usage). Measured: a first verification in a process (PEM parsing and the ECDSA P-384
signature checks), a repeated one (served by the per-process cache: fingerprints and dates
only), and the offline encrypt's fixed cost (read the bundle, get a checked public key,
encrypt a 1-byte recording in memory) before certificates (the JSON bundle of version 1)
and after (the PEM bundle, verified, cached). The CA signs with a local P-384 key here:
what ``kms:Sign`` costs is paid when a certificate is issued, never by an encryptor.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.common import Result, bench_kek, fmt_ms
from kmsbridge.crypto.certificates import (
    build_ca_certificate,
    build_kek_certificate,
    pem_chain,
)
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.trust import TrustAnchors, VerificationCache, verify_kek_certificate
from kmsbridge.recordings.codec import encrypt_stream

ORG = "bench"
NOW = datetime.now(UTC)


def run(quick: bool = False) -> list[Result]:
    repeats = 200 if quick else 2000
    public = bench_kek()[1]
    ca, bundle_pem = make_bundle(public)
    trust = TrustAnchors(platform=(ca,))
    rsa_wrap = best_of(repeats, lambda: public.wrap_dek(b"\x00" * 32))
    cold = best_of(repeats // 4, lambda: verify_pem(bundle_pem, trust, VerificationCache()))
    warm_cache = VerificationCache()
    verify_pem(bundle_pem, trust, warm_cache)
    warm = best_of(repeats, lambda: verify_pem(bundle_pem, trust, warm_cache))
    before, after, first = fixed_costs(public, bundle_pem, trust, repeats)
    return [
        Result(
            "certificates",
            "KEK certificate check, first in a process",
            fmt_ms(cold),
            f"one RSA-3072 OAEP wrap {fmt_ms(rsa_wrap)}",
            cold / rsa_wrap,
            "",
        ),
        Result(
            "certificates",
            "KEK certificate check, cached (every later encryption)",
            fmt_ms(warm),
            f"one RSA-3072 OAEP wrap {fmt_ms(rsa_wrap)}",
            warm / rsa_wrap,
            "<= 0.5x",
        ),
        Result(
            "certificates",
            "offline encrypt fixed cost: PEM bundle verified (cached) vs JSON bundle",
            fmt_ms(after),
            f"JSON bundle, no certificate {fmt_ms(before)}",
            after / before,
            "<= 1.1x",
        ),
        Result(
            "certificates",
            "offline encrypt fixed cost, the first file of a process (nothing cached)",
            fmt_ms(first),
            f"JSON bundle, no certificate {fmt_ms(before)}",
            first / before,
            "",
        ),
    ]


def make_bundle(public: KekPublicKey) -> tuple[object, bytes]:
    key = ec.generate_private_key(ec.SECP384R1())

    def sign(tbs: bytes) -> bytes:
        return key.sign(tbs, ec.ECDSA(hashes.SHA384()))

    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    day = timedelta(days=1)
    ca = build_ca_certificate(
        spki, name="bench CA", not_before=NOW - day, not_after=NOW + 999 * day, sign=sign
    )
    kek = build_kek_certificate(
        public.spki_der, org=ORG, ca=ca, not_before=NOW - day, not_after=NOW + 90 * day, sign=sign
    )
    return ca, pem_chain([kek, ca])


def verify_pem(bundle_pem: bytes, trust: TrustAnchors, cache: VerificationCache) -> KekPublicKey:
    verified = verify_kek_certificate(
        bundle_pem, org=ORG, trust=trust, now=datetime.now(UTC), cache=cache
    )
    return KekPublicKey.from_der(verified.spki_der)


def fixed_costs(
    public: KekPublicKey, bundle_pem: bytes, trust: TrustAnchors, repeats: int
) -> tuple[float, float, float]:
    """Best cost of reading a bundle and encrypting 1 byte: JSON v1, PEM verified (cached),
    PEM verified with an empty cache (a process's first file)."""
    json_bundle = json.dumps(
        {
            "kmsbridge_bundle": 1,
            "org": ORG,
            "kek": public.kek_id,
            "public_key": base64.b64encode(public.spki_der).decode(),
            "not_after": (NOW + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).encode()

    def from_json() -> KekPublicKey:  # what bundle.read_bundle did before certificates
        data = json.loads(json_bundle)
        key = KekPublicKey.from_der(base64.b64decode(data["public_key"], validate=True))
        until = datetime.strptime(data["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert data["org"] == ORG and key.kek_id == data["kek"] and datetime.now(UTC) < until
        return key

    cache = VerificationCache()

    def encrypt_with(get_key: Callable[[], KekPublicKey]) -> Callable[[], object]:
        return lambda: encrypt_stream(
            io.BytesIO(b"x"), io.BytesIO(), public_key=get_key(), org=ORG, recording_id="r"
        )

    before_fn = encrypt_with(from_json)
    after_fn = encrypt_with(lambda: verify_pem(bundle_pem, trust, cache))
    first_fn = encrypt_with(lambda: verify_pem(bundle_pem, trust, VerificationCache()))
    after_fn()  # the first verification fills the per-process cache
    before, after, first = [], [], []
    for i in range(repeats):  # interleaved, so machine noise hits all alike
        before.append(timed(before_fn))
        after.append(timed(after_fn))
        if i % 4 == 0:
            first.append(timed(first_fn))
    return min(before), min(after), min(first)


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest run: on a shared machine the least disturbed one."""
    return min(timed(fn) for _ in range(max(repeats, 5)))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
