"""An org made through the command line itself, on moto's server (one table per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from tests.cli.helpers import kmsbridge
from tests.conftest import REGION


@dataclass
class CliOrg:
    table: str
    name: str
    arn: str
    kek: str


@pytest.fixture
def cli_org(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliOrg]:
    table = f"cli18-{os.urandom(4).hex()}"
    monkeypatch.setenv("KMSBRIDGE_TABLE", table)
    # The operator's own config file (if any) must not reach the tests.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    assert kmsbridge("table", "create").code == 0
    # Every KEK is certified by the platform CA, which encryptors pin (KMSBRIDGE_CA_FILE).
    ca_key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    assert kmsbridge("ca", "create", "--kms-key", ca_key).code == 0
    ca_file = tmp_path_factory.mktemp("ca") / "platform-ca.pem"
    ca_file.write_bytes(kmsbridge("ca", "show").out)
    monkeypatch.setenv("KMSBRIDGE_CA_FILE", str(ca_file))
    added = kmsbridge("--output", "json", "org", "add", "acme", "--kms-key", arn)
    assert added.code == 0, added.err
    yield CliOrg(table, "acme", arn, added.json()["active_kek"])
