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
"""

from __future__ import annotations

import functools
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
def embedded_aws(region: str = "us-east-1") -> Iterator[str]:
    """Start moto's server on 127.0.0.1 (a free port) and yield its endpoint URL.

    Sets dummy credentials and the endpoint in this process's environment for the
    duration (so any boto3 client built inside reaches only loopback), then restores them.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    enforce_kms_key_states()
    serialize_dynamodb_writes()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(
        _ENV | {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        saved.setdefault(name, os.environ.pop(name, None))
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


_ENV = {
    "AWS_ACCESS_KEY_ID": "kmsbridge-embedded",
    "AWS_SECRET_ACCESS_KEY": "kmsbridge-embedded",
    "AWS_ENDPOINT_URL": "",
    "AWS_DEFAULT_REGION": "",
    "AWS_REGION": "",
}
