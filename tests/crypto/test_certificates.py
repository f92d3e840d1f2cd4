"""KEK certificates: built for an external signer (a local P-384 key here), checked by openssl.

Every refusal the encryptors rely on is tried: another key, another org, another CA, a
changed byte, dates, key usage, a CA as leaf; and the per-process cache is shown to keep
checking dates.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from pyasn1.codec.der import decoder
from pyasn1_modules import rfc5280, rfc5480

from kmsbridge.crypto import certificates as certs
from kmsbridge.crypto import trust as trust_module
from kmsbridge.crypto.certificates import (
    build_ca_certificate,
    build_kek_certificate,
    fingerprint,
    load_pem_chain,
    pem_chain,
)
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.trust import (
    TrustAnchors,
    VerificationCache,
    load_trust,
    verify_kek_certificate,
)
from kmsbridge.errors import IntegrityError, InvalidRequest
from tests.conftest import FIXED_NOW
from tests.legacy_pki import make_identity, rsa_key

DAY = timedelta(days=1)
START = FIXED_NOW - DAY
END = FIXED_NOW + 90 * DAY


@cache
def ca_key(slot: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def signer(key: ec.EllipticCurvePrivateKey) -> certs.Signer:
    return lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA384()))


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@cache
def platform_ca(slot: int = 0) -> x509.Certificate:
    return build_ca_certificate(
        spki(ca_key(slot)),
        name=f"test platform CA {slot}",
        not_before=FIXED_NOW - 365 * DAY,
        not_after=FIXED_NOW + 3650 * DAY,
        sign=signer(ca_key(slot)),
    )


def issue(kek: KekPublicKey, org: str = "acme", slot: int = 0, **dates: object) -> x509.Certificate:
    return build_kek_certificate(
        kek.spki_der,
        org=org,
        ca=platform_ca(slot),
        not_before=dates.get("not_before", START),  # type: ignore[arg-type]
        not_after=dates.get("not_after", END),  # type: ignore[arg-type]
        sign=signer(ca_key(slot)),
    )


def verify(chain: list[x509.Certificate], trust: TrustAnchors | None = None, **kw: object):
    """Through the key table's form (DER certificates); bundles are PEM (tested below)."""
    options = {"org": "acme", "now": FIXED_NOW, "cache": None} | kw
    ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    return verify_kek_certificate(
        ders, trust=trust or TrustAnchors(platform=(platform_ca(),)), **options
    )


@pytest.fixture(scope="module")
def kek(kek_pair) -> KekPublicKey:
    return kek_pair[1]


# ---------------------------------------------------------------- building


def test_kek_certificate_profile(kek):
    cert = issue(kek)
    assert cert.issuer == platform_ca().subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value.digest.hex() == kek.kek_id
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_encipherment and not usage.value.digital_signature
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (START, END)
    cert.verify_directly_issued_by(platform_ca())


def test_tbs_names_ecdsa_with_sha384_like_the_outer_algorithm(kek):
    cert = issue(kek)
    tbs, rest = decoder.decode(cert.tbs_certificate_bytes, asn1Spec=rfc5280.TBSCertificate())
    assert not rest
    assert tbs["signature"]["algorithm"] == rfc5480.ecdsa_with_SHA384
    assert not tbs["signature"]["parameters"].isValue  # absent, RFC 5758
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384


def test_the_signer_sees_the_final_tbs(kek):
    seen = []

    def recording_signer(tbs: bytes) -> bytes:
        seen.append(tbs)
        return signer(ca_key(0))(tbs)

    cert = build_kek_certificate(
        kek.spki_der,
        org="acme",
        ca=platform_ca(),
        not_before=START,
        not_after=END,
        sign=recording_signer,
    )
    assert seen == [cert.tbs_certificate_bytes]


def test_a_signature_by_another_key_never_makes_a_certificate(kek):
    with pytest.raises(IntegrityError, match="does not verify"):
        build_kek_certificate(
            kek.spki_der,
            org="acme",
            ca=platform_ca(),
            not_before=START,
            not_after=END,
            sign=signer(ca_key(1)),
        )


def test_ca_key_must_be_p384():
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidRequest, match="P-384"):
        build_ca_certificate(
            spki(other), name="x", not_before=START, not_after=END, sign=signer(ca_key(0))
        )


def test_kek_certificate_must_end_within_its_ca(kek):
    with pytest.raises(InvalidRequest, match="within its CA"):
        issue(kek, not_after=platform_ca().not_valid_after_utc + DAY)


# ---------------------------------------------------------------- openssl agrees


@pytest.mark.skipif(shutil.which("openssl") is None, reason="machine lacks openssl")
def test_openssl_verify_accepts_the_bundle_and_refuses_another_ca(kek, tmp_path: Path):
    cert = issue(kek)
    (tmp_path / "ca.pem").write_bytes(pem_chain([platform_ca()]))
    (tmp_path / "other.pem").write_bytes(pem_chain([platform_ca(1)]))
    (tmp_path / "bundle.pem").write_bytes(pem_chain([cert, platform_ca()]))
    (tmp_path / "kek.pem").write_bytes(pem_chain([cert]))

    def openssl_verify(cafile: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(tmp_path / cafile),
                "-untrusted",
                str(tmp_path / "bundle.pem"),
                str(tmp_path / "kek.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    ok = openssl_verify("ca.pem")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("OK")
    assert openssl_verify("other.pem").returncode != 0
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(tmp_path / "kek.pem")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Key Encipherment" in text and "ecdsa-with-SHA384" in text
    assert kek.kek_id[:8].upper() in text.replace(":", "")


# ---------------------------------------------------------------- verifying


def test_verified_kek(kek):
    verified = verify([issue(kek), platform_ca()], kek_id=kek.kek_id)
    assert (verified.org, verified.kek_id, verified.profile) == ("acme", kek.kek_id, "platform")
    assert verified.spki_der == kek.spki_der
    assert verified.anchor == fingerprint(platform_ca())
    assert verified.not_after == END


def test_another_public_key_is_refused(kek):
    other = KekPublicKey.from_key(rsa_key(7).public_key())
    with pytest.raises(IntegrityError, match="certifies another public key"):
        verify([issue(other)], kek_id=kek.kek_id)


def test_another_org_is_refused(kek):
    with pytest.raises(IntegrityError, match="for org \\['evil'\\], not 'acme'"):
        verify([issue(kek, org="evil")])


def test_another_ca_is_refused_even_with_the_same_name(kek):
    impostor = build_ca_certificate(
        spki(ca_key(2)),
        name="test platform CA 0",
        not_before=START,
        not_after=END,
        sign=signer(ca_key(2)),
    )
    forged = build_kek_certificate(
        kek.spki_der,
        org="acme",
        ca=impostor,
        not_before=START,
        not_after=END - DAY,
        sign=signer(ca_key(2)),
    )
    with pytest.raises(IntegrityError, match="does not chain up to a pinned CA"):
        verify([forged, impostor])
    with pytest.raises(IntegrityError, match="does not chain up"):
        verify([issue(kek, slot=1), platform_ca(1)])


@pytest.mark.parametrize("where", ["signature", "validity"])
def test_a_changed_byte_is_refused(kek, where):
    der = bytearray(issue(kek).public_bytes(serialization.Encoding.DER))
    if where == "signature":
        der[-5] ^= 0x01
    else:  # one year later: a certificate that would outlive its KEK's cryptoperiod
        der[der.index(END.strftime("%y%m%d%H%M%SZ").encode())] += 1
    changed = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(IntegrityError, match="does not chain up to a pinned CA"):
        verify([changed])


def test_pem_bundle_and_garbage(kek):
    trust = TrustAnchors(platform=(platform_ca(),))
    bundle = pem_chain([issue(kek), platform_ca()])
    verified = verify_kek_certificate(bundle, org="acme", trust=trust, now=FIXED_NOW, cache=None)
    assert verified.kek_id == kek.kek_id
    garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(IntegrityError, match="not X.509 certificates in PEM"):
        load_pem_chain(garbage)
    for bad in (garbage, b"", b"{}"):
        with pytest.raises(IntegrityError):
            verify_kek_certificate(bad, org="acme", trust=trust, now=FIXED_NOW, cache=None)
    with pytest.raises(IntegrityError, match="not DER X.509"):
        verify_kek_certificate([b"\x30\x00"], org="acme", trust=trust, now=FIXED_NOW)


@pytest.mark.parametrize(
    ("now", "message"),
    [(START - DAY, "not valid before"), (END, "expired on"), (END + DAY, "expired on")],
)
def test_dates_are_checked(kek, now, message):
    with pytest.raises(InvalidRequest, match=message):
        verify([issue(kek)], now=now)


def test_key_usage_other_than_key_encipherment_is_refused(kek):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")]))
        .issuer_name(platform_ca().subject)
        .public_key(kek.key)
        .serial_number(1)
        .not_valid_before(START)
        .not_valid_after(END)
        .add_extension(x509.SubjectKeyIdentifier(bytes.fromhex(kek.kek_id)), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
    )
    cert = builder.sign(ca_key(0), hashes.SHA384())
    with pytest.raises(IntegrityError, match="keyEncipherment only"):
        verify([cert])


def test_a_ca_is_not_a_kek_certificate():
    with pytest.raises(IntegrityError):
        verify([platform_ca(), platform_ca()])


def test_fingerprint_pin_accepts_the_presented_ca_only_if_it_matches(kek):
    pinned = TrustAnchors(platform_fingerprints=(fingerprint(platform_ca()),))
    assert verify([issue(kek), platform_ca()], trust=pinned).profile == "platform"
    with pytest.raises(IntegrityError, match="does not chain up"):
        verify([issue(kek, slot=1), platform_ca(1)], trust=pinned)


def test_nothing_pinned_is_refused():
    with pytest.raises(InvalidRequest, match="no CA is pinned"):
        TrustAnchors()


def test_customer_ca_binds_the_org_by_its_pin():
    root = make_identity("customer root", rsa_key(5), ca=True)
    leaf = make_identity("recorder", rsa_key(6), issuer=root)
    kek_id = KekPublicKey.from_key(rsa_key(6).public_key()).kek_id
    trust = TrustAnchors(platform=(platform_ca(),), customer={"acme": (root.cert,)})
    verified = verify([leaf.cert, root.cert], trust=trust, kek_id=kek_id)
    assert verified.profile == "customer"
    with pytest.raises(IntegrityError, match="does not chain up"):
        verify([leaf.cert, root.cert], trust=trust, org="other")
    with pytest.raises(IntegrityError, match="does not chain up"):  # not pinned by fingerprint
        verify([leaf.cert, root.cert], trust=TrustAnchors(platform=(platform_ca(),)))


def test_cache_skips_signatures_but_not_dates(kek, monkeypatch):
    chain = [issue(kek), platform_ca()]
    trust = TrustAnchors(platform=(platform_ca(),))
    calls = []
    real = trust_module._verify
    monkeypatch.setattr(trust_module, "_verify", lambda *a: calls.append(1) or real(*a))
    cache_ = VerificationCache()
    for _ in range(3):
        verify(chain, trust=trust, cache=cache_)
    assert len(calls) == 1
    with pytest.raises(InvalidRequest, match="expired"):
        verify(chain, trust=trust, cache=cache_, now=END + DAY)
    verify(chain, trust=trust, cache=cache_, org="acme", kek_id=kek.kek_id)
    assert len(calls) == 2  # another expectation is another entry
    with pytest.raises(IntegrityError):
        verify(chain, trust=trust, cache=cache_, org="evil")


def test_load_trust_reads_the_encryptors_own_files(tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem_chain([platform_ca()]))
    trust = load_trust(
        "acme", ca_file=str(tmp_path / "ca.pem"), ca_fingerprint=fingerprint(platform_ca(1)).upper()
    )
    assert trust.platform == (platform_ca(),)
    assert trust.platform_fingerprints == (fingerprint(platform_ca(1)),)
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "acme.pem").write_bytes(pem_chain([platform_ca(2)]))
    by_dir = load_trust(
        "acme", ca_file=str(tmp_path / "ca.pem"), customer_ca_dir=str(tmp_path / "customers")
    )
    assert by_dir.customer == {"acme": (platform_ca(2),)}
    other = load_trust(
        "globex", ca_file=str(tmp_path / "ca.pem"), customer_ca_dir=str(tmp_path / "customers")
    )
    assert other.customer == {}
    with pytest.raises(InvalidRequest, match="cannot read the pinned CA file"):
        load_trust("acme", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidRequest, match="64 hex digits"):
        load_trust("acme", ca_fingerprint="abc")
    (tmp_path / "leaf.pem").write_bytes(b"not pem")
    with pytest.raises(InvalidRequest, match="not PEM certificates"):
        load_trust("acme", ca_file=str(tmp_path / "leaf.pem"))
    with pytest.raises(InvalidRequest, match="no CA is pinned"):
        load_trust("acme")
