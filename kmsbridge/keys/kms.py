"""Wrap and unwrap KEK private keys under an org's KMS keys, with the AWS Encryption SDK.

A wrapped KEK is an ESDK message from a strict, multi-region-aware KMS master key
provider over the org's key ARNs (no discovery mode), with the encryption context
``kmsbridge:org``, ``kmsbridge:kek`` and ``kmsbridge:purpose=kek``. Several ARNs give
one encrypted data key each, so any one of them unwraps; replicas of one multi-region key
share one data key. Unwrapping tries the ARNs one at a time, the local region first, and
accepts the result only if the returned context is exactly the expected one.

Every wrap and unwrap names the org's registered ARNs (``registered``: what ``org add`` or
the audited ``org set-kms-keys`` recorded in the org's settings item) and refuses any ARN
outside them with WRONG_ORG before any KMS call: a KEK item, a job message or a caller that
names another tenant's key gets nothing, whatever IAM would allow.

KMS errors become the library's: disabled, pending deletion or denied -> ACCESS_REVOKED;
unknown key -> NOT_FOUND; bad ciphertext or context -> INTEGRITY; throttling, 5xx and
network faults after botocore's adaptive retries -> KMS_UNAVAILABLE (retryable).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aws_encryption_sdk
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature, InvalidTag

from kmsbridge.aws import AwsClients, error_for, error_for_code
from kmsbridge.crypto.kek import KekPublicKey, load_unwrapped_private_key
from kmsbridge.errors import (
    AccessRevoked,
    IntegrityError,
    InternalError,
    InvalidRequest,
    KmsBridgeError,
    KmsUnavailable,
    NotFound,
    WrongOrg,
)
from kmsbridge.formats import CONTEXT_ORG, kek_context

log = logging.getLogger(__name__)


class RedactKmsPlaintext(logging.Filter):
    """botocore logs request and response bodies at DEBUG (``--debug``, a DEBUG root
    logger), and a KMS body's ``Plaintext`` is key material: the data key that wraps a KEK.
    The value is replaced before any handler sees the record (as the ESDK CLI does)."""

    _FIELD = re.compile(r'("Plaintext"\s*:\s*")[^"]*(")')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Plaintext" in message:
            record.msg, record.args = self._FIELD.sub(r"\1<redacted>\2", message), None
        return True


# The botocore loggers that print bodies: request params and prepared requests, responses.
for _name in ("botocore.endpoint", "botocore.parsers"):
    logging.getLogger(_name).addFilter(RedactKmsPlaintext())

# Signed suite: a wrapped KEK can only be made by a principal allowed to GenerateDataKey,
# so a decrypt-only role (the decryptor) cannot forge one. Unwrapping is rare (cache).
KEK_WRAP_SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
_ESDK_PUBLIC_KEY_CONTEXT = "aws-crypto-public-key"
KEY_STATE_NOT_VISIBLE = "NotVisible"
# The KEK blob carries one EDK per ARN; a few replicas at most.
MAX_KEK_DATA_KEYS = 8


class UnregisteredKmsKey(WrongOrg):
    """A KMS key ARN that is not one of the org's registered keys (no KMS call made)."""


def check_registered(org: str, kms_key_arns: Sequence[str], registered: Sequence[str]) -> None:
    """Refuse any ARN that the org's settings item does not register, before any KMS call."""
    foreign = [arn for arn in kms_key_arns if arn not in set(registered)]
    if foreign:
        raise UnregisteredKmsKey(
            f"KMS key {foreign[0]} is not registered for org {org!r} "
            f"(kmsbridge org set-kms-keys {org} --kms-key ARN); no KMS call was made"
        )


class NotWrappedUnder(IntegrityError):
    """The blob has no data key for the KMS key tried (no KMS call made): try the next ARN."""


@dataclass
class _CallLog:
    """KMS outcomes seen by this thread during one ESDK call (botocore event hooks)."""

    errors: list[KmsBridgeError]
    calls: int = 0
    operation: str | None = None  # the call being made, and the key it names
    arn: str | None = None


class KekWrapper:
    """Wraps and unwraps KEK private keys through KMS; one per process, reused warm."""

    def __init__(self, clients: AwsClients | None = None) -> None:
        self._clients = clients or AwsClients()
        self._local = threading.local()
        self._providers: dict[str, MRKAwareStrictAwsKmsMasterKeyProvider] = {}
        self._lock = threading.Lock()
        self._esdk = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
            max_encrypted_data_keys=MAX_KEK_DATA_KEYS,
        )
        self.kms_calls = 0  # every KMS request this wrapper sent, for tests and benchmarks

    # ------------------------------------------------------------ public

    def wrap(
        self,
        pkcs8_der: bytes,
        *,
        org: str,
        kek_id: str,
        kms_key_arns: Sequence[str],
        registered: Sequence[str],
    ) -> bytes:
        """An ESDK message of the PKCS#8 key under every listed ARN (one per MRK), each of
        which must be one of the org's ``registered`` ARNs."""
        return self.wrap_secret(
            pkcs8_der, kek_context(org, kek_id), kms_key_arns, org=org, registered=registered
        )

    def unwrap(
        self,
        blob: bytes,
        *,
        org: str,
        kek_id: str,
        kms_key_arns: Sequence[str],
        registered: Sequence[str],
    ) -> bytes:
        """The PKCS#8 key of a wrapped KEK, trying each ARN (local region first); every ARN
        must be one of the org's ``registered`` ARNs."""
        return self.unwrap_secret(
            blob, kek_context(org, kek_id), kms_key_arns, org=org, registered=registered
        )

    def wrap_secret(
        self,
        secret: bytes,
        context: dict[str, str],
        kms_key_arns: Sequence[str],
        *,
        org: str,
        registered: Sequence[str],
    ) -> bytes:
        """A secret of the org (a KEK, an LKM Hawk key) under its KMS keys, with its context;
        every ARN must be one of the org's ``registered`` ARNs (checked before any KMS call)."""
        arns = distinct_keys(kms_key_arns)
        check_registered(org, arns, registered)
        provider = self._provider(tuple(arns))
        blob, _ = self._call(
            lambda: self._esdk.encrypt(
                source=secret,
                key_provider=provider,
                encryption_context=context,
                algorithm=KEK_WRAP_SUITE,
            )
        )
        return bytes(blob)

    def unwrap_secret(
        self,
        blob: bytes,
        context: dict[str, str],
        kms_key_arns: Sequence[str],
        *,
        org: str,
        registered: Sequence[str],
    ) -> bytes:
        """The secret, if KMS agrees and the blob's context is exactly ``context``; every ARN
        tried must be one of the org's ``registered`` ARNs (checked before any KMS call)."""
        if not kms_key_arns:
            raise IntegrityError("the wrapped key lists no KMS key")
        check_registered(org, kms_key_arns, registered)
        errors: list[KmsBridgeError] = []
        for arn in self._local_first(kms_key_arns):
            provider = self._provider((arn,))
            try:
                plaintext, header = self._call(
                    partial(self._esdk.decrypt, source=blob, key_provider=provider)
                )
            except (AccessRevoked, NotFound, KmsUnavailable, InternalError, NotWrappedUnder) as exc:
                errors.append(exc)
                continue
            check_context(dict(header.encryption_context), context)
            return bytes(plaintext)
        raise most_actionable(errors)

    def key_state(self, arn: str) -> str:
        """KMS's KeyState for one key (Enabled, Disabled, PendingDeletion, ...), or an error.

        ``NotVisible`` when this identity may not call DescribeKey. The platform's roles are
        given none on purpose: KMS evaluates no encryption context on DescribeKey, so it
        cannot be limited to the org. The canary unwrap is then the verdict on access.
        """
        client = self._kms_client(region_of(arn))
        self._local.log = _CallLog(errors=[])
        try:
            return str(client.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"])
        except (ClientError, BotoCoreError) as exc:
            error = error_for(exc, "kms")
            if isinstance(error, AccessRevoked):
                return KEY_STATE_NOT_VISIBLE
            raise error from exc
        finally:
            self._local.log = None

    # ------------------------------------------------------------ internals

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._local.log = _CallLog(errors=[])
        try:
            return fn()
        except BotoCoreError as exc:
            raise error_for(exc, "kms") from exc
        except (AWSEncryptionSDKClientError, InvalidTag, InvalidSignature, ValueError):
            # InvalidTag/InvalidSignature/ValueError: the ESDK lets cryptography's and its
            # parser's errors through for a damaged blob.
            seen: _CallLog = self._local.log
            if seen.errors:
                raise most_actionable(seen.errors) from None
            if seen.calls == 0:
                raise NotWrappedUnder(
                    "the wrapped KEK is not wrapped under any of the org's KMS keys"
                ) from None
            raise IntegrityError("the wrapped KEK failed authentication") from None
        finally:
            self._local.log = None

    def _provider(self, arns: tuple[str, ...]) -> MRKAwareStrictAwsKmsMasterKeyProvider:
        key = "\n".join(arns)
        with self._lock:
            if key not in self._providers:
                # Our botocore session: the ESDK would otherwise make one per provider
                # (~80 ms, on the first unwrap of every org), only to leave it unused.
                self._providers[key] = _provider_class(self._kms_client)(
                    key_ids=list(arns), botocore_session=self._clients.botocore_session
                )
            return self._providers[key]

    def _kms_client(self, region: str) -> Any:
        client = self._clients.client("kms", region)
        # Clients are shared (AwsClients): every wrapper hooks them once (unique_id), and a
        # hook records only the calls its own wrapper made on this thread (``_local.log``).
        events = client.meta.events
        events.register(
            "before-parameter-build.kms", self._before_call, unique_id=f"kmsbridge-p-{id(self)}"
        )
        events.register("after-call.kms", self._after_call, unique_id=f"kmsbridge-{id(self)}")
        events.register(
            "after-call-error.kms", self._after_call_error, unique_id=f"kmsbridge-e-{id(self)}"
        )
        return client

    def _before_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        seen = getattr(self._local, "log", None)
        if seen is not None:
            seen.operation, seen.arn = model.name, params.get("KeyId")

    def _after_call(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        seen = getattr(self._local, "log", None)
        if seen is None:
            return
        with self._lock:  # hooks of concurrent loads run on several threads
            self.kms_calls += 1
        seen.calls += 1
        error = parsed.get("Error")
        if error:
            status = getattr(http_response, "status_code", None)
            code = str(error.get("Code", ""))
            seen.errors.append(
                error_for_code("kms", code, status, operation=seen.operation, arn=seen.arn)
            )

    def _after_call_error(self, **_: Any) -> None:
        seen = getattr(self._local, "log", None)
        if seen is not None:
            with self._lock:
                self.kms_calls += 1
            seen.calls += 1
            seen.errors.append(KmsUnavailable("KMS is unreachable or timed out; retry later"))

    def _local_first(self, arns: Sequence[str]) -> list[str]:
        local = self._clients.region
        return sorted(dict.fromkeys(arns), key=lambda arn: region_of(arn) != local)


def _provider_class(
    client_for_region: Callable[[str], Any],
) -> type[MRKAwareStrictAwsKmsMasterKeyProvider]:
    class Provider(MRKAwareStrictAwsKmsMasterKeyProvider):  # type: ignore[misc]
        # The ESDK would build its own regional clients; ours carry the retry mode,
        # timeouts, endpoint and the hooks that tell which KMS error happened.
        def add_regional_client(self, region_name: str) -> None:
            if region_name not in self._regional_clients:
                self._regional_clients[region_name] = client_for_region(region_name)

    return Provider


def check_context(context: dict[str, str], expected: dict[str, str]) -> None:
    """The unwrapped blob must say exactly what was expected: org, key id, purpose."""
    context.pop(_ESDK_PUBLIC_KEY_CONTEXT, None)
    if context.get(CONTEXT_ORG) != expected[CONTEXT_ORG]:
        raise WrongOrg("the wrapped key belongs to another org")
    if context != expected:
        raise IntegrityError("the wrapped key's encryption context is not the expected one")


def most_actionable(errors: Sequence[KmsBridgeError]) -> KmsBridgeError:
    """Of several KMS failures, the one to report: retryable beats revoked beats the rest."""
    for kind in (KmsUnavailable, AccessRevoked, NotFound, IntegrityError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0] if errors else InternalError("no KMS key could be tried")


def region_of(arn: str) -> str:
    """The region field of a KMS key ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "kms" or not parts[5].startswith("key/"):
        raise InvalidRequest(f"{arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    return parts[3]


def validate_key_arns(arns: Sequence[str]) -> list[str]:
    """Full key ARNs only (a strict provider needs them), at least one, no duplicates."""
    if not arns:
        raise InvalidRequest("at least one KMS key ARN is required")
    for arn in arns:
        region_of(arn)
    return list(dict.fromkeys(arns))


def distinct_keys(arns: Sequence[str]) -> list[str]:
    """One ARN per key: replicas of one multi-region key (same mrk- id) count once."""
    seen: set[str] = set()
    out = []
    for arn in validate_key_arns(arns):
        key_id = arn.split(":")[5]
        identity = key_id if key_id.startswith("key/mrk-") else arn
        if identity not in seen:
            seen.add(identity)
            out.append(arn)
    return out


def verify_wrapped(
    kms: KekWrapper,
    blob: bytes,
    *,
    org: str,
    public: KekPublicKey,
    kms_key_arns: Sequence[str],
    registered: Sequence[str],
) -> None:
    """Unwrap a blob through KMS and check it holds the private half of ``public``."""
    pkcs8 = kms.unwrap(
        blob, org=org, kek_id=public.kek_id, kms_key_arns=kms_key_arns, registered=registered
    )
    load_unwrapped_private_key(pkcs8, public)
