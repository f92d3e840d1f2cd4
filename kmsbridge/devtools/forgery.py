"""What an attacker would hand an encryptor: certificates from a CA that is not the pinned one.

For the demo and the tests that show such bundles refused. Never imported by the library.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kmsbridge.clock import utcnow
from kmsbridge.crypto.certificates import build_ca_certificate, build_kek_certificate, pem_chain
from kmsbridge.keys.ca import CA_NAME


def look_alike_bundle(org: str) -> bytes:
    """A certificate for a fresh key, issued by a new CA named like the platform's."""
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def sign(tbs: bytes) -> bytes:
        return key.sign(tbs, ec.ECDSA(hashes.SHA384()))

    now = utcnow()
    ca = build_ca_certificate(
        spki, name=CA_NAME, not_before=now, not_after=now + timedelta(days=30), sign=sign
    )
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    kek = build_kek_certificate(
        attacker.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        org=org,
        ca=ca,
        not_before=now,
        not_after=now + timedelta(days=1),
        sign=sign,
    )
    return pem_chain([kek, ca])
