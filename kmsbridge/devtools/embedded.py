"""An embedded AWS for the demo and the tests: moto's server on 127.0.0.1, plus the KMS
behaviour moto lacks, added exactly as AWS documents it.

moto 5.2.5 records DisableKey and ScheduleKeyDeletion but still encrypts and decrypts
under such keys. Real KMS refuses Encrypt, Decrypt, GenerateDataKey (and ReEncrypt) on a
disabled key with ``DisabledException`` and on a key pending deletion (or otherwise not
usable) with ``KMSInvalidStateException`` (AWS KMS Developer Guide, "Key states of AWS KMS
keys"). ``enforce_kms_key_states`` patches moto's KMS backend to do the same, in process
(``mock_aws``) and in the threaded server alike. Imported only by the demo and the tests;
it needs moto, which the Lambda package does not contain.

moto also checks a DynamoDB condition and writes the item in two steps with no lock, so
two threads can both pass ``attribute_not_exists`` or ``version = :v``. DynamoDB documents
conditional writes and TransactWriteItems as atomic; ``serialize_dynamodb_writes`` holds
one lock around moto's write operations so concurrency tests see DynamoDB's behaviour.

moto stores a key policy set through PutKeyPolicy but never evaluates it.
``enforce_kek_deny_statements`` makes moto honour exactly one kind of statement, the one
revocation by period relies on (see ``kms_policy_denies`` for what matches and what not).

moto's Sign ignores ``MessageType=DIGEST`` and hashes the digest again, so its signature
verifies over the digest, not over the message. ``enforce_kms_sign_digest`` makes Sign
with DIGEST sign the given digest as AWS documents ("KMS skips the hashing step"; the
digest's length must match the signing algorithm's hash) for ECC keys, and refuses Sign
under a key that is not Enabled, as for Encrypt and Decrypt.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_PATCHED = False
_REFUSED_STATES = {
    "Disabled": ("DisabledException", "{arn} is disabled."),
    "PendingDeletion": ("KMSInvalidStateException", "{arn} is pending deletion."),
    "PendingReplicaDeletion": ("KMSInvalidStateException", "{arn} is pending deletion."),
    "PendingImport": ("KMSInvalidStateException", "{arn} is pending import."),
    "Unavailable": ("KMSInvalidStateException", "{arn} is unavailable."),
}


def enforce_kms_key_states() -> None:
    """Make moto's KMS refuse cryptographic use of keys that are not Enabled (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from moto.kms.models import KmsBackend
    from moto.kms.utils import _deserialize_ciphertext_blob

    original_encrypt = KmsBackend.encrypt
    original_decrypt = KmsBackend.decrypt

    def encrypt(self: Any, key_id: str, plaintext: bytes, encryption_context: Any) -> Any:
        _refuse_unusable(self, self.any_id_to_key_id(key_id))
        return original_encrypt(self, key_id, plaintext, encryption_context)

    def decrypt(self: Any, ciphertext_blob: bytes, encryption_context: Any, **kw: Any) -> Any:
        try:
            key_id = _deserialize_ciphertext_blob(ciphertext_blob).key_id
        except Exception:  # malformed blobs are moto's own InvalidCiphertextException
            key_id = None
        if key_id is not None:
            _refuse_unusable(self, key_id)
        return original_decrypt(self, ciphertext_blob, encryption_context, **kw)

    # generate_data_key and re_encrypt go through encrypt and decrypt, so they are covered.
    setattr(KmsBackend, "encrypt", encrypt)  # noqa: B010 - a documented patch of moto
    setattr(KmsBackend, "decrypt", decrypt)  # noqa: B010
    _PATCHED = True
    enforce_kek_deny_statements()
    enforce_kms_sign_digest()


# ------------------------------------------------------------------ Sign with DIGEST

_SIGN_PATCHED = False
_SIGN_CALL = threading.local()  # the MessageType of the Sign request this thread serves


def enforce_kms_sign_digest() -> None:
    """Make moto's Sign honour ``MessageType=DIGEST`` (ECC keys) and key states (idempotent)."""
    global _SIGN_PATCHED
    if _SIGN_PATCHED:
        return
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey

    original_response = KmsResponse.sign
    original_backend = KmsBackend.sign
    original_ecdsa = ECDSAPrivateKey.sign
    by_size = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}

    def response_sign(self: Any) -> str:
        _SIGN_CALL.digest = self._get_param("MessageType") == "DIGEST"
        try:
            return str(original_response(self))
        finally:
            _SIGN_CALL.digest = False

    def backend_sign(self: Any, key_id: str, message: bytes, signing_algorithm: str) -> Any:
        _refuse_unusable(self, self.any_id_to_key_id(key_id))
        hash_algorithm = by_size.get(str(signing_algorithm)[-3:])
        digest = getattr(_SIGN_CALL, "digest", False)
        if digest and hash_algorithm is not None and len(message) != hash_algorithm.digest_size:
            raise JsonRESTError(
                "ValidationException",
                f"Digest is invalid length for algorithm {signing_algorithm}.",
            )
        return original_backend(self, key_id, message, signing_algorithm)

    def ecdsa_sign(key: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_SIGN_CALL, "digest", False):
            return bytes(original_ecdsa(key, message, signing_algorithm))
        original_ecdsa(key, message, signing_algorithm)  # moto's own algorithm check
        prehashed = utils.Prehashed(by_size[signing_algorithm[-3:]])
        return bytes(key.private_key.sign(message, ec.ECDSA(prehashed)))

    setattr(KmsResponse, "sign", response_sign)  # noqa: B010 - a documented patch of moto
    setattr(KmsBackend, "sign", backend_sign)  # noqa: B010
    setattr(ECDSAPrivateKey, "sign", ecdsa_sign)  # noqa: B010
    _SIGN_PATCHED = True


# ------------------------------------------------------------------ key policies

_DENY_PATCHED = False
_DECRYPT = "kms:decrypt"
_KEK_CONDITION_KEY = "kms:encryptioncontext:kmsbridge:kek"
_KEK_CONDITION_OPERATORS = ("foranyvalue:stringequals", "stringequals")


def enforce_kek_deny_statements() -> None:
    """Make moto's Decrypt API honour kmsbridge:kek Deny statements of the key policy (idempotent).

    Patched at the Decrypt action (moto's ``KmsResponse.decrypt``), not at the backend, so
    ReEncrypt, which AWS authorizes as ``kms:ReEncryptFrom``, is not affected, as in AWS.
    """
    global _DENY_PATCHED
    if _DENY_PATCHED:
        return
    from moto.core.exceptions import JsonRESTError
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import _deserialize_ciphertext_blob

    original = KmsResponse.decrypt

    def decrypt(self: Any) -> str:
        try:
            key_id = _deserialize_ciphertext_blob(self._get_param("CiphertextBlob")).key_id
        except Exception:  # malformed blobs stay moto's own InvalidCiphertextException
            key_id = None
        key = self.kms_backend.keys.get(key_id) if key_id is not None else None
        if key is not None:
            context = self._get_param("EncryptionContext", {}) or {}
            sid = kms_policy_denies(key.policy, "kms:Decrypt", context)
            if sid is not None:
                raise JsonRESTError(
                    "AccessDeniedException",
                    f"not authorized to perform: kms:Decrypt on resource: {key.arn} "
                    "with an explicit deny in a resource-based policy",
                )
        return original(self)

    setattr(KmsResponse, "decrypt", decrypt)  # noqa: B010 - a documented patch of moto
    _DENY_PATCHED = True


def kms_policy_denies(policy: str | None, action: str, context: dict[str, str]) -> str | None:
    """The Sid (or "") of the first honoured Deny statement that matches, else None.

    Honoured, as the AWS KMS Developer Guide ("kms:EncryptionContext:context-key") and the
    IAM policy reference ("Condition operators", "ForAnyValue") describe them: a statement
    with ``Effect`` Deny, ``Action`` kms:Decrypt (a string or a list; action names are
    case-insensitive), ``Resource`` "*" (a key policy's own key), and a ``Condition`` made
    of exactly one operator, ``ForAnyValue:StringEquals`` or ``StringEquals``, on exactly
    one key, ``kms:EncryptionContext:kmsbridge:kek`` (key names case-insensitive, values
    case-sensitive), a string or a list. It matches when the request's context has a
    ``kmsbridge:kek`` value equal to one of the listed values; a request without that
    context key does not match (ForAnyValue over an empty set is false).

    Principal: any well-formed Principal ("*" or {"AWS": ARN or list of ARNs}) is treated
    as naming the caller. moto has no caller identity that could stand for the decryptor's
    role (every request carries the same dummy access key and no assumed role), so in the
    tests a statement of this kind denies every caller; the tests have one caller, the
    decryptor. Every other statement (Allow, NotAction, NotPrincipal, other actions,
    wildcards, other condition keys or operators, several conditions) is not evaluated, as
    moto evaluates none: this fixture adds one kind of Deny, it does not model key policies.
    """
    if not policy:
        return None
    try:
        document = json.loads(policy)
    except ValueError:
        return None
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    kek = context.get("kmsbridge:kek") if isinstance(context, dict) else None
    for statement in statements if isinstance(statements, list) else []:
        values = _honoured_kek_deny(statement, action)
        if values is not None and kek is not None and kek in values:
            return str(statement.get("Sid", ""))
    return None


def _honoured_kek_deny(statement: Any, action: str) -> list[str] | None:
    """The KEK ids a statement of the one honoured kind denies, or None if not that kind."""
    if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
        return None
    if {"NotAction", "NotPrincipal", "NotResource"} & statement.keys():
        return None
    actions = [a.lower() for a in _strings(statement.get("Action")) or []]
    if action.lower() != _DECRYPT or _DECRYPT not in actions:
        return None
    if statement.get("Resource") not in ("*", ["*"]):
        return None
    if not _principal_ok(statement.get("Principal")):
        return None
    condition = statement.get("Condition")
    if not isinstance(condition, dict) or len(condition) != 1:
        return None
    ((operator, clause),) = condition.items()
    if operator.lower() not in _KEK_CONDITION_OPERATORS:
        return None
    if not isinstance(clause, dict) or len(clause) != 1:
        return None
    ((key, values),) = clause.items()
    if key.lower() != _KEK_CONDITION_KEY:
        return None
    return _strings(values)


def _principal_ok(principal: Any) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict) or set(principal) != {"AWS"}:
        return False
    arns = _strings(principal["AWS"])
    return bool(arns) and all(a == "*" or a.startswith("arn:") for a in arns or [])


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


# ------------------------------------------------------------------ DynamoDB

_DYNAMODB_LOCK = threading.RLock()
_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def serialize_dynamodb_writes() -> None:
    """Make moto's conditional DynamoDB writes atomic, as DynamoDB's are (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _DYNAMODB_WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_kmsbridge_serialized", False):
            continue
        setattr(DynamoDBBackend, name, _locked(method))


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    call._kmsbridge_serialized = True  # type: ignore[attr-defined]
    return call


def _refuse_unusable(backend: Any, key_id: str) -> None:
    from moto.core.exceptions import JsonRESTError

    key = backend.keys.get(key_id)
    if key is None:
        return
    refusal = _REFUSED_STATES.get(key.key_state)
    if refusal is not None:
        code, message = refusal
        raise JsonRESTError(code, message.format(arn=key.arn))


@contextmanager
def embedded_aws(region: str = "us-east-1", port: int = 0) -> Iterator[str]:
    """Start moto's server on 127.0.0.1 (``port``, 0 = a free one) and yield its endpoint URL.

    Sets dummy credentials and the endpoint in this process's environment for the
    duration (so any boto3 client built inside reaches only loopback), then restores them.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    enforce_kms_key_states()
    enforce_kek_deny_statements()
    serialize_dynamodb_writes()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    values: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": "kmsbridge-embedded",
        "AWS_SECRET_ACCESS_KEY": "kmsbridge-embedded",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_SECURITY_TOKEN": None,
    }
    try:
        with environment(**values):
            yield endpoint
    finally:
        server.stop()


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
