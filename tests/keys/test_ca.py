"""The platform CA on moto's KMS: ECC_NIST_P384 Sign/Verify, the CA item, KEK certificates."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kmsbridge.crypto.certificates import pem_chain
from kmsbridge.crypto.trust import TrustAnchors, verify_kek_certificate
from kmsbridge.errors import AccessRevoked, InvalidRequest, NotFound
from kmsbridge.keys.ca import KmsSigner, certify_kek, create_ca, find_ca, get_ca
from kmsbridge.keys.table import KeyStore
from tests.conftest import FIXED_NOW

DAY = timedelta(days=1)


@pytest.fixture
def kms(aws):
    return aws.client("kms")


@pytest.fixture
def ca_key(kms) -> str:
    return kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]


@pytest.fixture
def store(aws) -> KeyStore:
    store = KeyStore(aws.client("dynamodb"), f"keks-{os.urandom(3).hex()}")
    store.create_table()
    return store


def test_moto_signs_and_verifies_ecc_nist_p384(kms, ca_key):
    """What the CA relies on in moto: ECDSA_SHA_384 signatures that OpenSSL verifies."""
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=ca_key)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    message = b"tbs certificate" * 50
    signature = kms.sign(
        KeyId=ca_key, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_384"
    )["Signature"]
    public.verify(signature, message, ec.ECDSA(hashes.SHA384()))
    verify = {"KeyId": ca_key, "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_384"}
    assert kms.verify(Message=message, Signature=signature, **verify)["SignatureValid"]
    assert not kms.verify(Message=message + b"x", Signature=signature, **verify)["SignatureValid"]
    # DIGEST: the embedded fixture makes moto sign the given digest, as AWS does.
    digest = hashlib.sha384(message).digest()
    on_digest = kms.sign(
        KeyId=ca_key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384"
    )["Signature"]
    public.verify(on_digest, message, ec.ECDSA(hashes.SHA384()))


def test_create_ca_is_self_signed_by_the_kms_key_and_idempotent(store, kms, ca_key):
    signer = KmsSigner(kms, ca_key)
    record = create_ca(store, signer, now=FIXED_NOW)
    cert = record.certificate
    cert.verify_directly_issued_by(cert)
    assert (
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == kms.get_public_key(KeyId=ca_key)["PublicKey"]
    )
    assert get_ca(store) == record
    assert create_ca(store, KmsSigner(kms, ca_key), now=FIXED_NOW + DAY) == record


def test_create_ca_refuses_another_key_and_the_wrong_kind_of_key(store, kms, ca_key):
    create_ca(store, KmsSigner(kms, ca_key), now=FIXED_NOW)
    other = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    with pytest.raises(InvalidRequest, match="not replaced"):
        create_ca(store, KmsSigner(kms, other), now=FIXED_NOW)


@pytest.mark.parametrize("spec", [{"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}, {}])
def test_a_key_that_cannot_be_the_ca_is_refused(store, kms, spec):
    arn = kms.create_key(**spec)["KeyMetadata"]["Arn"]
    with pytest.raises(InvalidRequest, match="ECC_NIST_P384 with key usage SIGN_VERIFY"):
        create_ca(store, KmsSigner(kms, arn), now=FIXED_NOW)
    assert find_ca(store) is None


def test_no_ca_yet(store):
    with pytest.raises(NotFound, match="kmsbridge ca create"):
        get_ca(store)


def test_kek_certificate_signed_through_kms_verifies_and_openssl_agrees(
    store, kms, ca_key, kek_pair, tmp_path
):
    signer = KmsSigner(kms, ca_key)
    ca = create_ca(store, signer, now=FIXED_NOW)
    kek = kek_pair[1]
    der = certify_kek(
        ca,
        signer,
        org="acme",
        spki_der=kek.spki_der,
        not_before=FIXED_NOW,
        not_after=FIXED_NOW + 90 * DAY,
    )
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    verified = verify_kek_certificate(
        [der],
        org="acme",
        kek_id=kek.kek_id,
        now=FIXED_NOW + DAY,
        trust=TrustAnchors(platform=(ca.certificate,)),
        cache=None,
    )
    assert verified.kek_id == kek.kek_id
    (tmp_path / "ca.pem").write_bytes(pem_chain([ca.certificate]))
    (tmp_path / "kek.pem").write_bytes(pem_chain([cert]))
    ok = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int((FIXED_NOW + DAY).timestamp())),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            str(tmp_path / "kek.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr


def test_kms_refusals_become_one_error_and_no_certificate(store, kms, ca_key, kek_pair):
    signer = KmsSigner(kms, ca_key)
    ca = create_ca(store, signer, now=FIXED_NOW)
    gone = KmsSigner(kms, ca_key.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000")
    object.__setattr__(ca, "kms_key", gone.kms_key)  # a CA item pointing at a missing key
    with pytest.raises(NotFound, match="platform CA's KMS key refused \\(NotFoundException\\)"):
        certify_kek(
            ca,
            gone,
            org="acme",
            spki_der=kek_pair[1].spki_der,
            not_before=FIXED_NOW,
            not_after=FIXED_NOW + DAY,
        )
    with pytest.raises(InvalidRequest, match="not the platform CA's KMS key"):
        certify_kek(
            ca,
            signer,
            org="acme",
            spki_der=kek_pair[1].spki_der,
            not_before=FIXED_NOW,
            not_after=FIXED_NOW + DAY,
        )


def test_a_disabled_ca_key_signs_nothing(store, kms, ca_key, kek_pair):
    signer = KmsSigner(kms, ca_key)
    ca = create_ca(store, signer, now=FIXED_NOW)
    kms.disable_key(KeyId=ca_key.rsplit("/", 1)[1])
    with pytest.raises(
        AccessRevoked, match="platform CA's KMS key refused \\(DisabledException\\)"
    ):
        certify_kek(
            ca,
            signer,
            org="acme",
            spki_der=kek_pair[1].spki_der,
            not_before=FIXED_NOW,
            not_after=FIXED_NOW + DAY,
        )
