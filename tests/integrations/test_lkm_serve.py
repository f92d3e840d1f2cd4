"""``kmsbridge lkm`` as an operator and Genesys Cloud use it, over real HTTP.

The CLI (a subprocess) makes the credential and the key pair against moto's server on
127.0.0.1; ``kmsbridge lkm serve`` (a subprocess, started and stopped here) serves the
endpoint; ``requests`` + mohawk are Genesys Cloud. Plain HTTP, and HTTPS with a
certificate made at test time.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import World
from tests.integrations.lkm_client import USER_ID, encrypt_data_key, sign

pytestmark = pytest.mark.server
DECRYPT = "/key-management/v1/decrypt"


def cli(*argv: str, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *argv, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Endpoint:
    base: str
    credential_id: str
    key: str
    keypair_id: str
    public_key: str
    verify: str | bool = False

    def post(self, path: str, body: object, *, key: str | None = None, query: str = "") -> Any:
        raw = json.dumps(body).encode()
        url = self.base + path + (f"?{query}" if query else "")
        header = sign(self.credential_id, key or self.key, url, "POST", raw)
        return self.send("POST", url, raw, header)

    def send(self, method: str, url: str, raw: bytes, header: str) -> requests.Response:
        headers = {
            "Authorization": header,
            "Content-Type": "application/json",
            "PureCloud-User-Id": USER_ID,
        }
        return requests.request(
            method, url, data=raw, headers=headers, verify=self.verify, timeout=30
        )


@contextmanager
def serving(env: dict[str, str], *tls: str) -> Iterator[str]:
    """``kmsbridge lkm serve --port 0`` until the block ends; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsbridge.cli.main", "lkm", "serve", "--port", "0", *tls],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving on "), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def lkm_env(server_world: World) -> dict[str, str]:
    return {
        **os.environ,
        "KMSBRIDGE_TABLE": server_world.store.table,
        "KMSBRIDGE_MAX_AGE_SECONDS": "2",
    }


@pytest.fixture
def registered(server_world: World, lkm_env: dict[str, str]) -> dict[str, Any]:
    org = server_world.org
    credential = cli("lkm", "credential", "create", org, "--id", f"genesys-{org}", env=lkm_env)
    body = cli("lkm", "keypair", "create", org, "--config-id", "cfg-1234", env=lkm_env)
    return {"credential": credential, "localkeys": body}


def endpoint(base: str, registered: dict[str, Any], verify: str | bool = False) -> Endpoint:
    credential, localkeys = registered["credential"], registered["localkeys"]
    return Endpoint(
        base,
        credential["id"],
        credential["authKey"],
        localkeys["keypairId"],
        localkeys["publicKey"],
        verify,
    )


def test_the_cli_prints_what_genesys_cloud_is_given(
    server_world: World, registered: dict[str, Any], lkm_env: dict[str, str]
) -> None:
    credential, localkeys = registered["credential"], registered["localkeys"]
    assert set(credential) == {"id", "authKey", "algorithm"} and credential["algorithm"] == "sha256"
    assert set(localkeys) == {"configId", "publicKey", "keypairId"}
    assert localkeys["configId"] == "cfg-1234"
    listed = cli("lkm", "keypair", "list", server_world.org, env=lkm_env)
    assert [k["id"] for k in listed["keypairs"]] == [localkeys["keypairId"]]
    assert listed["keypairs"][0]["publicKey"] == localkeys["publicKey"]


def test_decrypt_over_http_and_the_refusals(
    registered: dict[str, Any], lkm_env: dict[str, str], server_world: World
) -> None:
    with serving(lkm_env) as base:
        lkm = endpoint(base, registered)
        data_key = os.urandom(32)
        for pkcs1 in (False, True):
            body = {
                "keypairId": lkm.keypair_id,
                "body": encrypt_data_key(lkm.public_key, data_key, pkcs1),
            }
            response = lkm.post(DECRYPT, body, query="decryptType=pkcs1" if pkcs1 else "")
            assert response.status_code == 200, response.text
            assert base64.b64decode(response.json()["body"]) == data_key
        body = {"keypairId": lkm.keypair_id, "body": encrypt_data_key(lkm.public_key, data_key)}
        raw = json.dumps(body).encode()
        header = sign(lkm.credential_id, lkm.key, base + DECRYPT, "POST", raw)
        assert lkm.send("POST", base + DECRYPT, raw, header).status_code == 200
        replay = lkm.send("POST", base + DECRYPT, raw, header)
        assert replay.status_code == 401 and "body" not in replay.json()
        assert lkm.post(DECRYPT, body, key="not-the-key-given-to-genesys").status_code == 401
        stale_header = sign(
            lkm.credential_id, lkm.key, base + DECRYPT, "POST", raw, ts=int(time.time()) - 300
        )
        assert lkm.send("POST", base + DECRYPT, raw, stale_header).status_code == 401
        unknown = lkm.post(DECRYPT, {**body, "keypairId": "5b0e7cf4-3c3c-4a57-9d0e-7f3b0c0a9e11"})
        assert unknown.status_code == 400
        assert unknown.json() == {
            "message": "No key pair found with the id provided",
            "status": 400,
        }
        # The customer disables their KMS key: refused once the 2 s cache bound has passed.
        server_world.kms_client.disable_key(KeyId=server_world.key_id)  # type: ignore[attr-defined]
        time.sleep(2.2)
        refused = lkm.post(DECRYPT, body)
        assert refused.status_code == 503 and refused.json()["code"] == "ACCESS_REVOKED"


def test_https_with_a_certificate(
    registered: dict[str, Any], lkm_env: dict[str, str], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    with serving(lkm_env, "--tls-cert", str(cert), "--tls-key", str(key)) as base:
        assert base.startswith("https://")
        lkm = endpoint(base, registered, verify=str(cert))
        data_key = os.urandom(32)
        body = {"keypairId": lkm.keypair_id, "body": encrypt_data_key(lkm.public_key, data_key)}
        response = lkm.post(DECRYPT, body)
        assert base64.b64decode(response.json()["body"]) == data_key
        options = lkm.send(
            "OPTIONS",
            base + DECRYPT,
            b"",
            sign(lkm.credential_id, lkm.key, base + DECRYPT, "OPTIONS", b""),
        )
        assert options.status_code == 200 and options.json()["decryptResponse"]["body"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made now (no key is committed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "lkm.pem", directory / "lkm.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
