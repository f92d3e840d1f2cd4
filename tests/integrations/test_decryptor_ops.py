"""The decryptor Lambda's ops against moto's server on 127.0.0.1: each success, each error."""

from __future__ import annotations

import base64
import io
import os
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.sealing import KEMS, EphemeralKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.integrations.s3 import PLAYBACK_PREFIX
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.recordings.codec import encrypt_stream, read_header
from kmsbridge.services import Services, Settings
from tests.conftest import REGION, World

pytestmark = pytest.mark.server


@dataclass
class Setup:
    world: World
    app: LambdaApp
    s3: Any
    bucket: str  # recordings
    playback: str

    def put(self, blob: bytes, key: str = "calls/call-1.wav") -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=blob)
        return f"s3://{self.bucket}/{key}"

    def call(self, **event: Any) -> dict[str, Any]:
        return self.app.handle({"org": self.world.org} | event, "req-ops")

    def playback_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.playback, Prefix=PLAYBACK_PREFIX)
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def setup(server_world: World, server_aws: AwsClients) -> Setup:
    s3 = server_aws.client("s3")
    suffix = os.urandom(3).hex()
    bucket, playback = f"recordings-{suffix}", f"playback-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=playback)
    config = Settings(table=server_world.store.table, playback_bucket=playback)
    app = LambdaApp(Services(config, clients=server_aws, decryptor=server_world.decryptor))
    return Setup(server_world, app, s3, bucket, playback)


def header_b64(blob: bytes) -> str:
    return base64.b64encode(read_header(io.BytesIO(blob)).raw).decode()


def foreign_recording(kek_pair: Any, org: str) -> bytes:
    """A recording of the org under a KEK that is not in the key table."""
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"x"), out, public_key=kek_pair[1], org=org, recording_id="r")
    return out.getvalue()


def tampered(blob: bytes, offset: int) -> bytes:
    data = bytearray(blob)
    data[offset] ^= 1
    return bytes(data)


def dead_kms_app(setup: Setup) -> LambdaApp:
    dead = AwsClients(
        AwsSettings(
            region=REGION,
            endpoint_url="http://127.0.0.1:9",
            max_attempts=1,
            connect_timeout=0.2,
            read_timeout=0.2,
        )
    )
    world = setup.world
    decryptor = Decryptor(world.store, KekWrapper(dead), now=world.clock)
    return LambdaApp(Services(setup.app.config, clients=world.clients, decryptor=decryptor))


# ---------------------------------------------------------------- unwrap


def test_unwrap_without_response_key_returns_the_data_key(setup: Setup) -> None:
    blob = setup.world.encrypt(b"hello" * 100)
    response = setup.call(op="unwrap", header=header_b64(blob))
    assert response["ok"] is True
    assert response["kek"] == setup.world.kek_id
    assert set(response) == {"ok", "kek", "data_key"}
    data_key = base64.b64decode(response["data_key"])
    assert setup.world.decryptor(setup.world.org, read_header(io.BytesIO(blob)).raw) == data_key


@pytest.mark.parametrize("kem", KEMS)
def test_unwrap_with_response_key_returns_only_the_sealed_key(setup: Setup, kem: str) -> None:
    blob = setup.world.encrypt(b"hello")
    header = read_header(io.BytesIO(blob))
    key = EphemeralKey.generate(kem)
    public = base64.b64encode(key.public_bytes).decode()
    response = setup.call(
        op="unwrap", header=header_b64(blob), response_key={"kem": kem, "public_key": public}
    )
    assert set(response) == {"ok", "kek", "sealed_data_key"}
    sealed = base64.b64decode(response["sealed_data_key"])
    dek = key.open(
        sealed, org=setup.world.org, kek_id=response["kek"], message_id=header.message_id_hex
    )
    assert dek == setup.world.decryptor(setup.world.org, header.raw)


def test_small_order_response_key_gets_no_key(setup: Setup) -> None:
    zero = base64.b64encode(bytes(32)).decode()  # X25519's zero point: no shared secret
    blob = setup.world.encrypt(b"secret")
    response = setup.call(
        op="unwrap", header=header_b64(blob), response_key={"kem": "X25519", "public_key": zero}
    )
    assert response == {
        "ok": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": "response_key.public_key is not a usable X25519 key",
            "retryable": False,
        },
    }


def test_unwrap_errors(setup: Setup, kek_pair: Any) -> None:
    w = setup.world
    blob = w.encrypt(b"secret")

    def code(**event: Any) -> str:
        response = setup.call(op="unwrap", **event)
        assert response["ok"] is False
        assert set(response["error"]) == {"code", "message", "retryable"}
        return str(response["error"]["code"])

    assert code(header=header_b64(foreign_recording(kek_pair, w.org))) == "NOT_FOUND"
    assert code(org="globex", header=header_b64(blob)) == "WRONG_ORG"
    raw = read_header(io.BytesIO(blob)).raw
    assert code(header=base64.b64encode(tampered(raw, len(raw) - 20)).decode()) == "INTEGRITY"
    assert code(header=base64.b64encode(b"\x01" * 40).decode()) == "INTEGRITY"
    assert code(header="!") == "INVALID_REQUEST"
    w.kms_client.disable_key(KeyId=w.key_id)  # type: ignore[attr-defined]
    w.clock.advance(61)  # the tampered header's KEK was unwrapped and cached
    assert code(header=header_b64(blob)) == "ACCESS_REVOKED"


def test_kms_unreachable_is_retryable(setup: Setup) -> None:
    app = dead_kms_app(setup)
    blob = setup.world.encrypt(b"secret")
    response = app.handle({"op": "unwrap", "org": setup.world.org, "header": header_b64(blob)})
    assert response["error"]["code"] == "KMS_UNAVAILABLE"
    assert response["error"]["retryable"] is True
    response = app.handle({"op": "decrypt", "org": setup.world.org, "source": setup.put(blob)})
    assert response["error"]["code"] == "KMS_UNAVAILABLE"
    check = app.handle({"op": "access-check", "org": setup.world.org})
    assert check["state"] == "unavailable"
    assert {k["state"] for k in check["kms_keys"]} == {"KMS_UNAVAILABLE"}


def test_unexpected_failure_is_internal_with_no_detail(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("detail-that-must-not-leak")

    monkeypatch.setattr(setup.world.decryptor, "unwrap", boom)
    response = setup.call(op="unwrap", header=header_b64(setup.world.encrypt(b"x")))
    assert response["error"]["code"] == "INTERNAL"
    assert "req-ops" in response["error"]["message"]
    assert "detail-that-must-not-leak" not in str(response)
    assert "detail-that-must-not-leak" not in capsys.readouterr().out


# ---------------------------------------------------------------- decrypt


def test_decrypt_makes_an_expiring_sse_copy_and_a_url(setup: Setup) -> None:
    data = os.urandom(12 * 1024 * 1024 + 12345)  # two 8 MiB-bounded parts
    source = setup.put(setup.world.encrypt(data))
    response = setup.call(op="decrypt", source=source, expires_in=120)
    assert response["ok"] is True, response
    assert response["expires_in"] == 120
    with urllib.request.urlopen(response["url"]) as got:
        assert got.read() == data
    [key] = setup.playback_keys()
    assert key.startswith(f"{PLAYBACK_PREFIX}{setup.world.org}/") and key.endswith("/call-1.wav")
    head = setup.s3.head_object(Bucket=setup.playback, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in response["url"]
    assert "X-Amz-Expires=120" in response["url"]


def test_decrypt_of_a_tampered_recording_leaves_no_object(setup: Setup) -> None:
    blob = setup.world.encrypt(os.urandom(9 * 1024 * 1024))
    response = setup.call(op="decrypt", source=setup.put(tampered(blob, len(blob) - 5)))
    assert response["error"]["code"] == "INTEGRITY"
    assert setup.playback_keys() == []
    uploads = setup.s3.list_multipart_uploads(Bucket=setup.playback)
    assert uploads.get("Uploads", []) == []


def test_decrypt_errors(setup: Setup) -> None:
    w = setup.world
    blob = w.encrypt(b"secret")

    def code(source: str, **event: Any) -> str:
        response = setup.call(op="decrypt", source=source, **event)
        assert response["ok"] is False, response
        return str(response["error"]["code"])

    assert code(f"s3://{setup.bucket}/missing.wav") == "NOT_FOUND"
    assert code(f"s3://nosuch-{os.urandom(3).hex()}/a.wav") == "NOT_FOUND"
    assert code(setup.put(blob), org="globex") == "WRONG_ORG"
    assert code(setup.put(blob), expires_in=5) == "INVALID_REQUEST"
    unconfigured = LambdaApp(
        Services(Settings(table=w.store.table), clients=w.clients, decryptor=w.decryptor)
    )
    response = unconfigured.handle({"op": "decrypt", "org": w.org, "source": setup.put(blob)})
    assert response["error"]["code"] == "INTERNAL"
    assert "KMSBRIDGE_PLAYBACK_BUCKET" in response["error"]["message"]
    w.kms_client.disable_key(KeyId=w.key_id)  # type: ignore[attr-defined]
    w.clock.advance(61)
    assert code(setup.put(blob)) == "ACCESS_REVOKED"
    assert setup.playback_keys() == []


# ---------------------------------------------------------------- access-check


def test_access_check_ok_then_revoked(setup: Setup) -> None:
    w = setup.world
    response = setup.call(op="access-check")
    assert response == {
        "ok": True,
        "org": w.org,
        "state": "ok",
        "kms_keys": [{"arn": w.key_arn, "state": "Enabled"}],
        "keks": [{"kek": w.kek_id, "state": "active", "outcome": "ok"}],
    }
    w.kms_client.disable_key(KeyId=w.key_id)  # type: ignore[attr-defined]
    response = setup.call(op="access-check")
    assert response["state"] == "revoked"
    assert response["kms_keys"] == [{"arn": w.key_arn, "state": "Disabled"}]
    assert response["keks"][0]["outcome"] == "ACCESS_REVOKED"
    assert "data_key" not in str(response)


def test_access_check_errors(setup: Setup) -> None:
    assert setup.call(op="access-check", org="nobody")["error"]["code"] == "NOT_FOUND"
    assert setup.call(op="access-check", org="no body")["error"]["code"] == "INVALID_REQUEST"
