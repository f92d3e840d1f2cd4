"""The whole story against moto's server on 127.0.0.1, over real HTTP (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import io
import os

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.crypto.trust import TrustAnchors
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import AccessRevoked, IntegrityError
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import create_org, public_key_for_encryption
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, Clock, World, platform_certifier

pytestmark = pytest.mark.server


def play(decryptor: Decryptor, org: str, blob: bytes) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, org=org, data_keys=decryptor)
    return out.getvalue()


def test_encrypt_play_revoke_restore(server_world: World, moto_server: str) -> None:
    w = server_world
    assert os.environ["AWS_ENDPOINT_URL"] == moto_server
    public = public_key_for_encryption(w.store, w.org, trust=w.trust, now=FIXED_NOW)
    calls_before = w.wrapper.kms_calls
    recording = io.BytesIO()
    encrypt_stream(
        io.BytesIO(b"hello " * 10_000),
        recording,
        public_key=public,
        org=w.org,
        recording_id="call-1",
    )
    assert w.wrapper.kms_calls == calls_before  # encrypting needs no KMS call
    blob = recording.getvalue()
    assert play(w.decryptor, w.org, blob) == b"hello " * 10_000

    w.kms_client.disable_key(KeyId=w.key_id)
    assert play(w.decryptor, w.org, blob) == b"hello " * 10_000  # cached, within max age
    w.clock.advance(60)
    with pytest.raises(AccessRevoked):
        play(w.decryptor, w.org, blob)
    w.kms_client.enable_key(KeyId=w.key_id)
    assert play(w.decryptor, w.org, blob) == b"hello " * 10_000

    tampered = bytearray(blob)
    tampered[len(blob) // 2] ^= 1
    with pytest.raises(IntegrityError):
        play(w.decryptor, w.org, bytes(tampered))


def test_two_keys_in_two_regions_either_one_alone_unwraps(server_aws: AwsClients) -> None:
    east = server_aws.client("kms", "us-east-1").create_key()["KeyMetadata"]["Arn"]
    west = server_aws.client("kms", "eu-west-1").create_key()["KeyMetadata"]["Arn"]
    store = KeyStore(server_aws.client("dynamodb"), f"keks-regions-{os.urandom(3).hex()}")
    store.create_table()
    wrapper = KekWrapper(server_aws)
    certifier = platform_certifier(store, server_aws.client("kms", "us-east-1"))
    create_org(store, wrapper, "twin", [east, west], now=FIXED_NOW, certifier=certifier)
    trust = TrustAnchors(platform=(certifier.ca.certificate,))
    public = public_key_for_encryption(store, "twin", trust=trust, now=FIXED_NOW)
    recording = io.BytesIO()
    encrypt_stream(
        io.BytesIO(b"x" * 1000), recording, public_key=public, org="twin", recording_id="r"
    )
    for disabled_region, arn in (("us-east-1", east), ("eu-west-1", west)):
        kms = server_aws.client("kms", disabled_region)
        kms.disable_key(KeyId=arn.rsplit("/", 1)[1])
        decryptor = Decryptor(store, wrapper, max_age=0, now=Clock())
        assert play(decryptor, "twin", recording.getvalue()) == b"x" * 1000
        kms.enable_key(KeyId=arn.rsplit("/", 1)[1])
