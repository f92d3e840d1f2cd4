"""Shared fixtures: AWS through moto (in process, or its server on 127.0.0.1), test keys.

No hand-written fakes of AWS: boto3 talks to moto. moto's KMS is given the key-state
behaviour it lacks by ``kmsbridge.devtools.embedded.enforce_kms_key_states`` (see its tests).
RSA keys are generated at test time, never committed.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.certificates import pem_chain
from kmsbridge.crypto.kek import KekPublicKey, generate_kek
from kmsbridge.crypto.trust import TrustAnchors
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.devtools.embedded import (
    embedded_aws,
    enforce_kms_key_states,
    serialize_dynamodb_writes,
)
from kmsbridge.keys.ca import KmsSigner, create_ca, find_ca
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.certification import KekCertifier
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import encrypt_stream

REGION = "us-east-1"
FIXED_NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

enforce_kms_key_states()
serialize_dynamodb_writes()


class Clock:
    """A monotonic clock the test moves by hand (cache ages without sleeping)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def restore_kmsbridge_loggers() -> Iterator[None]:
    """Undo what a test's handler set on our loggers (the Lambda's logging set-up turns off
    propagation for good), so a later test's caplog still sees audit lines."""
    loggers = [logging.getLogger(name) for name in ("kmsbridge.audit", "kmsbridge.lambda")]
    saved = [(log, log.level, log.propagate, list(log.handlers)) for log in loggers]
    yield
    for log, level, propagate, handlers in saved:
        log.setLevel(level)
        log.propagate = propagate
        log.handlers[:] = handlers


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def kek_pair() -> tuple[rsa.RSAPrivateKey, KekPublicKey]:
    """One RSA-3072 KEK for tests that need a key pair but no KMS."""
    return generate_kek()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[AwsClients]:
    """In-process moto (``mock_aws``) and clients configured as production configures them."""
    with mock_aws():
        yield AwsClients(AwsSettings(region=REGION))


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (a free port), reached over real HTTP via AWS_ENDPOINT_URL."""
    with embedded_aws(REGION) as endpoint:
        yield endpoint


@pytest.fixture
def server_aws(moto_server: str) -> AwsClients:
    return AwsClients(AwsSettings(region=REGION, endpoint_url=moto_server))


@dataclass
class World:
    """One org with a KMS key, a key table and a decryptor on a controlled clock."""

    clients: AwsClients
    kms_client: object
    key_arn: str
    store: KeyStore
    wrapper: KekWrapper
    decryptor: Decryptor
    clock: Clock
    org: str
    kek_id: str
    public_key: KekPublicKey
    certifier: KekCertifier
    trust: TrustAnchors

    @property
    def key_id(self) -> str:
        return self.key_arn.rsplit("/", 1)[1]

    def encrypt(self, data: bytes, recording_id: str = "call-1", **kw: object) -> bytes:
        out = io.BytesIO()
        encrypt_stream(
            io.BytesIO(data),
            out,
            public_key=self.public_key,
            org=self.org,
            recording_id=recording_id,
            **kw,  # type: ignore[arg-type]
        )
        return out.getvalue()


def make_world(
    clients: AwsClients,
    clock: Clock,
    org: str = "acme",
    table: str | None = None,
    max_age: float = 60.0,
) -> World:
    kms_client = clients.client("kms")
    key_arn = kms_client.create_key(Description=f"customer key of {org}")["KeyMetadata"]["Arn"]
    store = KeyStore(clients.client("dynamodb"), table or f"keks-{org}-{os.urandom(3).hex()}")
    store.create_table()
    wrapper = KekWrapper(clients)
    certifier = platform_certifier(store, kms_client)
    _, kek = create_org(store, wrapper, org, [key_arn], now=FIXED_NOW, certifier=certifier)
    decryptor = Decryptor(store, wrapper, max_age=max_age, now=clock)
    return World(
        clients,
        kms_client,
        key_arn,
        store,
        wrapper,
        decryptor,
        clock,
        org,
        kek.kek_id,
        KekPublicKey.from_der(kek.public_key),
        certifier,
        TrustAnchors(platform=(certifier.ca.certificate,)),
    )


def platform_certifier(store: KeyStore, kms_client: Any) -> KekCertifier:
    """The table's platform CA (made on first use: a moto ECC_NIST_P384 signing key), valid
    from a year before the tests' fixed clock."""
    ca = find_ca(store)
    if ca is None:
        arn = kms_client.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")
        signer = KmsSigner(kms_client, arn["KeyMetadata"]["Arn"])
        return KekCertifier(create_ca(store, signer, now=FIXED_NOW - timedelta(days=365)), signer)
    return KekCertifier(ca, KmsSigner(kms_client, ca.kms_key))


def write_ca_file(world: World, folder: Path) -> Path:
    """The platform CA certificate as an encryptor pins it (``--ca`` / KMSBRIDGE_CA_FILE)."""
    path = folder / "platform-ca.pem"
    path.write_bytes(pem_chain([world.certifier.ca.certificate]))
    return path


@pytest.fixture
def world(aws: AwsClients, clock: Clock) -> World:
    """In-process moto world (unit tests)."""
    return make_world(aws, clock)


@pytest.fixture
def server_world(server_aws: AwsClients, clock: Clock) -> World:
    """The same against moto's server over HTTP (integration tests)."""
    return make_world(server_aws, clock, org=f"acme-{os.urandom(3).hex()}")


def boto_client(service: str) -> object:
    return boto3.client(service, region_name=REGION)


def pin_platform_ca(
    store: KeyStore, kms_client: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A platform CA in the table (before ``org add``) and pinned as encryptors pin it:
    ``KMSBRIDGE_CA_FILE``, which CLI subprocesses inherit."""
    certifier = platform_certifier(store, kms_client)
    path = folder / "platform-ca.pem"
    path.write_bytes(pem_chain([certifier.ca.certificate]))
    monkeypatch.setenv("KMSBRIDGE_CA_FILE", str(path))
    return path
