"""Playback with the standard ESDK streaming API, data keys from a decryptor.

A playback service that prefers the official AWS Encryption SDK to kmsbridge's own codec
uses ``esdk_decrypt_stream``: it reads the recording's header, and gives the ESDK a
materials manager bound to that header, whose data key comes from any ``DataKeySource``
(a local ``Decryptor``, or the Lambda client). The ESDK then checks the commitment, the
header tag and every frame itself.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import (
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider
from aws_encryption_sdk.materials_managers import DecryptionMaterials
from aws_encryption_sdk.materials_managers.base import CryptoMaterialsManager
from aws_encryption_sdk.structures import DataKey, MasterKeyInfo
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import MessageHeader
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import MAX_ENCRYPTED_DATA_KEYS, PROVIDER_ID, RECORDING_SUITE_ID
from kmsbridge.recordings.codec import DataKeySource, check_org, kek_data_key, read_header


class HeaderBoundMaterialsManager(CryptoMaterialsManager):  # type: ignore[misc]
    """Gives the ESDK the data key of one known header, and refuses any other message."""

    def __init__(self, org: str, header: MessageHeader, data_keys: DataKeySource) -> None:
        check_org(header, org)
        self._org = org
        self._header = header
        self._kek_id, self._encrypted_dek = kek_data_key(header)
        self._data_keys = data_keys

    def get_encryption_materials(self, request: Any) -> Any:
        raise InvalidRequest("this materials manager only decrypts; encrypt with kmsbridge")

    def decrypt_materials(self, request: Any) -> DecryptionMaterials:
        if request.algorithm.algorithm_id != RECORDING_SUITE_ID:
            raise IntegrityError("the message's algorithm suite is not the recordings' suite")
        if dict(request.encryption_context) != dict(self._header.encryption_context):
            raise IntegrityError("the message is not the one whose header was read")
        dek = self._data_keys(self._org, self._header.raw)
        return DecryptionMaterials(
            data_key=DataKey(
                key_provider=MasterKeyInfo(PROVIDER_ID, self._kek_id.encode("ascii")),
                data_key=dek,
                encrypted_data_key=self._encrypted_dek,
            ),
            verification_key=None,
        )


class _Prefixed(io.RawIOBase):
    """The header bytes already read, then the rest of the source."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = io.BytesIO(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._prefix.readinto(view)
        if n:
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def esdk_decrypt_stream(source: BinaryIO, *, org: str, data_keys: DataKeySource) -> Any:
    """An ESDK ``StreamDecryptor`` over ``source``: iterate it or ``read()`` plaintext."""
    header = read_header(source)
    manager = HeaderBoundMaterialsManager(org, header, data_keys)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
        max_encrypted_data_keys=MAX_ENCRYPTED_DATA_KEYS,
    )
    stream = io.BufferedReader(_Prefixed(header.raw, source))
    return client.stream(mode="d", source=stream, materials_manager=manager)


class _KekProvider(RawMasterKeyProvider):  # type: ignore[misc]
    provider_id = PROVIDER_ID
    wrapping_key: WrappingKey

    def _get_raw_key(self, key_id: bytes) -> WrappingKey:
        return self.wrapping_key


def esdk_kek_provider(
    public: KekPublicKey, private: rsa.RSAPrivateKey | None = None
) -> RawMasterKeyProvider:
    """The official ESDK's view of a KEK: raw RSA-OAEP-SHA256-MGF1, provider ``kmsbridge``.

    With the public key only, a plain ESDK client writes recordings kmsbridge plays; with
    the private key too, it reads them (tools, interop tests, benchmarks).
    """
    if private is None:
        key = public.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kind = EncryptionKeyType.PUBLIC
    else:
        key = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        kind = EncryptionKeyType.PRIVATE
    provider = _KekProvider()
    provider.wrapping_key = WrappingKey(
        wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
        wrapping_key=key,
        wrapping_key_type=kind,
    )
    provider.add_master_key(public.kek_id.encode("ascii"))
    return provider
