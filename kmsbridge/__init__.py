"""kmsbridge: customer-held AWS KMS keys for encrypted call recordings.

The key hierarchy, top to bottom, is the package's folders: the customer's KMS key wraps
the org's RSA key-encryption key (``keys/``: records, KMS wrapping, the key table), whose
public key wraps one AES-256 data key per recording (``crypto/``), which encrypts the
recording in an AWS Encryption SDK v2 message (``recordings/``). ``decryptor/`` unwraps
just in time; ``lifecycle/`` rotates, rewraps and backs up; ``legacy/`` and ``export/``
speak to older recorders and to customers; ``integrations/`` and ``cli/`` are the doors.

The public API below is loaded lazily: ``import kmsbridge`` imports neither boto3 nor the
ESDK, so an offline encryptor pays only for what it uses::

    from kmsbridge import encrypt_file, load_trust, read_bundle
    trust = load_trust("acme", ca_file="platform-ca.pem")      # the encryptor's own pin
    key = read_bundle("acme.pem", "acme", trust=trust)         # checked, or INTEGRITY
    encrypt_file("call.wav", "call.enc", org="acme", recording_id="call-1", public_key=key)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it; nothing is imported until a name is used.
_PUBLIC = {
    # errors
    "KmsBridgeError": "kmsbridge.errors",
    "InvalidRequest": "kmsbridge.errors",
    "NotFound": "kmsbridge.errors",
    "WrongOrg": "kmsbridge.errors",
    "IntegrityError": "kmsbridge.errors",
    "AccessRevoked": "kmsbridge.errors",
    "KmsUnavailable": "kmsbridge.errors",
    "Unavailable": "kmsbridge.errors",
    "InternalError": "kmsbridge.errors",
    # encrypting (public key only, no AWS)
    "KekPublicKey": "kmsbridge.crypto.kek",
    "RecordingInfo": "kmsbridge.recordings.codec",
    "encrypt_stream": "kmsbridge.recordings.codec",
    "encrypt_file": "kmsbridge.recordings.codec",
    "decrypt_stream": "kmsbridge.recordings.codec",
    "decrypt_file": "kmsbridge.recordings.codec",
    "decrypt_range": "kmsbridge.recordings.ranges",
    "read_bundle": "kmsbridge.keys.bundle",
    "TrustAnchors": "kmsbridge.crypto.trust",
    "load_trust": "kmsbridge.crypto.trust",
    # playback through AWS
    "AwsSettings": "kmsbridge.aws",
    "Settings": "kmsbridge.services",
    "Services": "kmsbridge.services",
    "Decryptor": "kmsbridge.decryptor.decryptor",
    "LambdaDataKeySource": "kmsbridge.integrations.aws_lambda.client",
}

__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:
    from kmsbridge.aws import AwsSettings
    from kmsbridge.crypto.kek import KekPublicKey
    from kmsbridge.crypto.trust import TrustAnchors, load_trust
    from kmsbridge.decryptor.decryptor import Decryptor
    from kmsbridge.errors import (
        AccessRevoked,
        IntegrityError,
        InternalError,
        InvalidRequest,
        KmsBridgeError,
        KmsUnavailable,
        NotFound,
        Unavailable,
        WrongOrg,
    )
    from kmsbridge.integrations.aws_lambda.client import LambdaDataKeySource
    from kmsbridge.keys.bundle import read_bundle
    from kmsbridge.recordings.codec import (
        RecordingInfo,
        decrypt_file,
        decrypt_stream,
        encrypt_file,
        encrypt_stream,
    )
    from kmsbridge.recordings.ranges import decrypt_range
    from kmsbridge.services import Services, Settings


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'kmsbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
