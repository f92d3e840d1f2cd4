"""The manifest's signature: chain of custody that the customer checks with openssl alone.

The platform signs ``manifest.json`` with an asymmetric KMS key of its own (``ECC_NIST_P384``,
``SIGN_VERIFY``; its private key never leaves KMS): ``kms:Sign`` with ``ECDSA_SHA_384``
over the SHA-384 digest of the manifest's bytes (``MessageType=DIGEST``, because a manifest
of a few dozen recordings is past the 4,096 bytes KMS signs as ``RAW``). KMS returns the
ECDSA signature DER-encoded, which is what ``openssl dgst -verify`` reads. Beside the
manifest go:

- ``manifest.json.sig``: the signature (DER);
- ``manifest-signer.pem``: the signing key's public key (SubjectPublicKeyInfo PEM, from
  ``kms:GetPublicKey``). It proves nothing by itself: the customer compares it with the
  public key the platform gave them out of band (or passes that key to ``export verify
  --signer``), then runs ``openssl dgst -sha384 -verify signer.pem -signature
  manifest.json.sig manifest.json``.

The manifest holds each exported file's SHA-256 (``openssl dgst -sha256 FILE``) and each
recording's plaintext SHA-256, so one signature covers every byte of the export.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kmsbridge.aws import AwsClients, client_error_code, error_for
from kmsbridge.errors import IntegrityError, InvalidRequest, KmsBridgeError
from kmsbridge.keys.kms import region_of

SIGNATURE_NAME = "manifest.json.sig"
SIGNER_NAME = "manifest-signer.pem"
SIGNING_KEY_SPEC = "ECC_NIST_P384"
SIGNING_ALGORITHM = "ECDSA_SHA_384"


class ManifestSigner:
    """Signs manifests with one KMS signing key; checks the key's kind on first use."""

    def __init__(self, clients: AwsClients, kms_key_arn: str) -> None:
        region_of(kms_key_arn)
        self.kms_key = kms_key_arn
        self._client = clients.client("kms", region_of(kms_key_arn))
        self._public_pem: bytes | None = None

    def public_key_pem(self) -> bytes:
        """The signing key's public key as PEM; refuses a key that is not P-384 SIGN_VERIFY."""
        if self._public_pem is None:
            answer = self._call("GetPublicKey", KeyId=self.kms_key)
            # AWS answers KeySpec and the older CustomerMasterKeySpec; moto only the older one.
            spec = answer.get("KeySpec", answer.get("CustomerMasterKeySpec"))
            if spec != SIGNING_KEY_SPEC or answer.get("KeyUsage") != "SIGN_VERIFY":
                raise InvalidRequest(
                    f"the export signing key must be {SIGNING_KEY_SPEC} with key usage SIGN_VERIFY"
                )
            public = serialization.load_der_public_key(bytes(answer["PublicKey"]))
            self._public_pem = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return self._public_pem

    def sign_manifest(self, manifest: bytes) -> dict[str, bytes]:
        """The files to put beside ``manifest.json``: its signature and the signer's key."""
        public_pem = self.public_key_pem()
        answer = self._call(
            "Sign",
            KeyId=self.kms_key,
            Message=hashlib.sha384(manifest).digest(),
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        signature = bytes(answer["Signature"])
        # A signature that does not verify is never published (fail closed).
        verify_manifest(manifest, signature, public_pem)
        return {SIGNATURE_NAME: signature, SIGNER_NAME: public_pem}

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = {"GetPublicKey": self._client.get_public_key, "Sign": self._client.sign}
        try:
            answer: dict[str, Any] = method[operation](**params)
        except ClientError as exc:
            raise _signing_error(exc) from None
        except BotoCoreError as exc:
            raise error_for(exc, "kms") from exc
        return answer


def verify_manifest(manifest: bytes, signature: bytes, signer_pem: bytes) -> None:
    """Check an ECDSA P-384 / SHA-384 signature of the manifest; raise INTEGRITY if not."""
    try:
        public = serialization.load_pem_public_key(signer_pem)
    except ValueError:
        raise InvalidRequest("the signer's public key is not a PEM public key") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise InvalidRequest("the signer's public key is not an ECDSA P-384 key")
    try:
        public.verify(signature, manifest, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise IntegrityError("the manifest's signature does not verify") from None


def signer_fingerprint(signer_pem: bytes) -> str:
    """SHA-256 of the signer's SubjectPublicKeyInfo DER, lowercase hex (what to compare)."""
    public = serialization.load_pem_public_key(signer_pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _signing_error(exc: ClientError) -> KmsBridgeError:
    code = client_error_code(exc)
    if code in ("InvalidKeyUsageException", "ValidationException"):
        return InvalidRequest(
            f"the export signing key cannot sign manifests ({code}): it must be "
            f"{SIGNING_KEY_SPEC} with key usage SIGN_VERIFY"
        )
    error = error_for(exc, "kms")
    return type(error)(f"the export signing key refused to sign ({code}): nothing was exported")
