"""The platform CA: an asymmetric KMS key that certifies every generated KEK through kms:Sign.

The CA's private key is a KMS key (``ECC_NIST_P384``, ``SIGN_VERIFY``) and never leaves KMS;
its self-signed certificate is kept in the key table in one item (partition key ``#platform``,
sort key ``#ca``: no org id can contain ``#``). The table is not trusted for it: encryptors
pin the CA themselves (``crypto/certificates.TrustAnchors``), so a CA item rewritten by
someone who can write the table certifies nothing they accept.

Signing uses ``MessageType=RAW`` (KMS hashes the TBSCertificate with SHA-384 itself): a TBS
is far below RAW's 4,096-byte limit, and RAW is what plain moto 5.2.5 signs as AWS does (its
``DIGEST`` needs the embedded fixture's patch, ``devtools.embedded.enforce_kms_sign_digest``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kmsbridge.aws import client_error_code, error_for
from kmsbridge.crypto.certificates import build_ca_certificate, build_kek_certificate
from kmsbridge.errors import (
    AccessRevoked,
    IntegrityError,
    InternalError,
    InvalidRequest,
    KmsBridgeError,
    NotFound,
)
from kmsbridge.keys.kms import region_of
from kmsbridge.keys.table import KeyStore

CA_PARTITION_KEY = "#platform"
CA_SORT_KEY = "#ca"
CA_KEY_SPEC = "ECC_NIST_P384"
CA_SIGNING_ALGORITHM = "ECDSA_SHA_384"
CA_NAME = "kmsbridge platform CA"
# The CA outlives every KEK certificate it signs: 10 years, far past the longest
# cryptoperiod (730 days); a KEK certificate never ends after its CA's.
CA_VALIDITY = timedelta(days=3650)
# KMS Sign takes at most 4,096 bytes of RAW message.
MAX_RAW_MESSAGE = 4096


@dataclass(frozen=True)
class CaRecord:
    """The platform CA as the key table holds it: its KMS key and its certificate (DER)."""

    kms_key: str
    certificate_der: bytes = field(repr=False)
    created_at: str
    version: int = 1

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)


class KmsSigner:
    """``kms:Sign`` with the CA key, ECDSA_SHA_384 over the TBSCertificate: a ``Signer``."""

    def __init__(self, kms_client: Any, kms_key_arn: str) -> None:
        region_of(kms_key_arn)
        self.client = kms_client
        self.kms_key = kms_key_arn
        self.calls = 0

    def public_key(self) -> bytes:
        """The CA key's SubjectPublicKeyInfo DER; refuses a key that cannot be the CA."""
        answer = self._call("GetPublicKey", KeyId=self.kms_key)
        # AWS answers KeySpec and the older CustomerMasterKeySpec; moto only the older one.
        spec = answer.get("KeySpec", answer.get("CustomerMasterKeySpec"))
        if spec != CA_KEY_SPEC or answer.get("KeyUsage") != "SIGN_VERIFY":
            raise InvalidRequest(
                f"the platform CA key must be {CA_KEY_SPEC} with key usage SIGN_VERIFY"
            )
        return bytes(answer["PublicKey"])

    def __call__(self, tbs: bytes) -> bytes:
        if len(tbs) > MAX_RAW_MESSAGE:
            raise InvalidRequest("the certificate to sign is larger than KMS Sign accepts")
        answer = self._call(
            "Sign",
            KeyId=self.kms_key,
            Message=tbs,
            MessageType="RAW",
            SigningAlgorithm=CA_SIGNING_ALGORITHM,
        )
        return bytes(answer["Signature"])

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        method = {"GetPublicKey": self.client.get_public_key, "Sign": self.client.sign}[operation]
        try:
            answer: dict[str, Any] = method(**params)
        except (ClientError, BotoCoreError) as exc:
            raise _ca_error(exc) from exc
        return answer


def _ca_error(exc: ClientError | BotoCoreError) -> KmsBridgeError:
    """``aws.error_for``'s code; its KMS sentences speak of the customer's key, not ours."""
    error = error_for(exc, "kms", what="the platform CA's KMS key")
    if isinstance(exc, ClientError) and isinstance(
        error, AccessRevoked | NotFound | IntegrityError | InternalError
    ):
        code = client_error_code(exc)
        return type(error)(f"the platform CA's KMS key refused ({code}): it signs no certificate")
    return error


# ---------------------------------------------------------------- the CA item


def create_ca(store: KeyStore, signer: KmsSigner, *, now: datetime) -> CaRecord:
    """Make the platform CA: a self-signed certificate for the KMS key, stored once.

    Running it again with the same KMS key returns the CA already stored; another key is
    refused (the CA is not replaced behind the encryptors' pins).
    """
    existing = find_ca(store)
    if existing is not None:
        if existing.kms_key != signer.kms_key:
            raise InvalidRequest(
                f"the platform CA already exists with KMS key {existing.kms_key}; "
                "it is not replaced"
            )
        return existing
    certificate = build_ca_certificate(
        signer.public_key(),
        name=CA_NAME,
        not_before=now,
        not_after=now + CA_VALIDITY,
        sign=signer,
    )
    record = CaRecord(
        kms_key=signer.kms_key,
        certificate_der=certificate.public_bytes(Encoding.DER),
        created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    store.put_new_item(
        _to_item(record), conflict="the platform CA was created concurrently; run it again"
    )
    return record


def find_ca(store: KeyStore) -> CaRecord | None:
    item = store.get_item(CA_PARTITION_KEY, CA_SORT_KEY)
    return None if item is None else _from_item(item)


def get_ca(store: KeyStore) -> CaRecord:
    record = find_ca(store)
    if record is None:
        raise NotFound("there is no platform CA yet: kmsbridge ca create --kms-key ARN")
    return record


def certify_kek(
    ca: CaRecord,
    signer: KmsSigner,
    *,
    org: str,
    spki_der: bytes,
    not_before: datetime,
    not_after: datetime,
) -> bytes:
    """The DER certificate of a KEK public key for ``org``, valid for its active use.

    A period reaching past the CA's own end is cut to it (the KEK is rotated before).
    """
    if signer.kms_key != ca.kms_key:
        raise InvalidRequest("the signer is not the platform CA's KMS key")
    cert = ca.certificate
    certificate = build_kek_certificate(
        spki_der,
        org=org,
        ca=cert,
        not_before=not_before,
        not_after=min(not_after, cert.not_valid_after_utc),
        sign=signer,
    )
    return certificate.public_bytes(Encoding.DER)


def _key() -> dict[str, Any]:
    return {"org": {"S": CA_PARTITION_KEY}, "kek": {"S": CA_SORT_KEY}}


def _to_item(record: CaRecord) -> dict[str, Any]:
    return {
        **_key(),
        "kms_key": {"S": record.kms_key},
        "certificate": {"B": record.certificate_der},
        "created_at": {"S": record.created_at},
        "version": {"N": str(record.version)},
    }


def _from_item(item: dict[str, Any]) -> CaRecord:
    return CaRecord(
        kms_key=item["kms_key"]["S"],
        certificate_der=bytes(item["certificate"]["B"]),
        created_at=item["created_at"]["S"],
        version=int(item["version"]["N"]),
    )
