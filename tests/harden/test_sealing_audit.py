"""Issue 15, finding 9: the audit says ``ok`` only for a key that left, and only sealed if
the deployment says so.

The attack: an ``unwrap`` with an all-zero X25519 response key. cryptography loads that
point and only refuses the exchange, so the old decryptor unwrapped, audited the release
as ``ok``, then failed to seal: the audit trail recorded a key release that never
happened. Now a small-order point is INVALID_REQUEST at the door (no KMS call, one audit
line saying so), and sealing happens inside the audited release, so a key that could
not be sealed is never audited as released. ``KMSBRIDGE_REQUIRE_SEALED=1`` refuses any
``unwrap`` that would answer with a bare data key.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kmsbridge.crypto.sealing import MLKEM768_X25519, X25519, EphemeralKey, ResponseKey
from kmsbridge.errors import ConfigurationError, InvalidRequest
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.recordings.codec import read_header
from kmsbridge.services import Services, Settings
from tests.conftest import World

P = 2**255 - 19
# Curve25519 points of small order (RFC 7748 section 6.1 needs their all-zero secret
# refused): 0, 1, the two of order 8, p - 1, and p and p + 1 (non-canonical 0 and 1).
SMALL_ORDER_X25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P - 1).to_bytes(32, "little"),
    P.to_bytes(32, "little"),
    (P + 1).to_bytes(32, "little"),
]


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]


def app_for(world: World, **settings: Any) -> LambdaApp:
    config = Settings(table=world.store.table, **settings)
    return LambdaApp(Services(config, clients=world.clients, decryptor=world.decryptor))


def unwrap_event(world: World, blob: bytes, kem: str | None, public_key: bytes) -> dict[str, Any]:
    event: dict[str, Any] = {
        "op": "unwrap",
        "org": world.org,
        "header": base64.b64encode(read_header(io.BytesIO(blob)).raw).decode(),
    }
    if kem is not None:
        event["response_key"] = {"kem": kem, "public_key": base64.b64encode(public_key).decode()}
    return event


def test_cryptography_loads_a_small_order_point_and_refuses_only_the_exchange() -> None:
    """Why a size check is not enough: the premise of the attack, in the library we use."""
    zero = x25519.X25519PublicKey.from_public_bytes(bytes(32))
    with pytest.raises(ValueError):
        x25519.X25519PrivateKey.generate().exchange(zero)


@pytest.mark.parametrize("point", SMALL_ORDER_X25519, ids=lambda p: p.hex()[:8])
@pytest.mark.parametrize("kem", [X25519, MLKEM768_X25519])
def test_a_small_order_response_key_is_refused_before_kms_and_never_audited_ok(
    world: World, caplog: pytest.LogCaptureFixture, kem: str, point: bytes
) -> None:
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    raw = point if kem == X25519 else EphemeralKey.generate(kem).public_bytes[:1184] + point
    blob = world.encrypt(b"secret")
    calls = world.wrapper.kms_calls
    answer = app_for(world).handle(unwrap_event(world, blob, kem, raw), "req-zero")
    assert answer == {
        "ok": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": f"response_key.public_key is not a usable {kem} key",
            "retryable": False,
        },
    }
    assert world.wrapper.kms_calls == calls  # refused at the door
    assert [(a["op"], a["outcome"]) for a in audit_lines(caplog)] == [("unwrap", "INVALID_REQUEST")]
    assert len(world.decryptor.data_keys) == 0


def test_a_key_that_cannot_be_sealed_is_audited_as_refused_not_released(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the door (a ResponseKey built without ``parse``): the seal is part of the
    release, so its failure is the audited outcome and no sealed key comes back."""
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    blob = world.encrypt(b"secret")
    with pytest.raises(InvalidRequest, match="not a usable X25519 key"):
        world.decryptor.unwrap(
            world.org,
            read_header(io.BytesIO(blob)).raw,
            response_key=ResponseKey(X25519, bytes(32)),
        )
    [line] = audit_lines(caplog)
    assert (line["outcome"], line["kek"], line.get("sealed")) == (
        "INVALID_REQUEST",
        world.kek_id,
        None,
    )


def test_a_sealed_release_is_audited_with_its_kem(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    blob = world.encrypt(b"secret")
    key = EphemeralKey.generate(X25519)
    answer = app_for(world).handle(unwrap_event(world, blob, X25519, key.public_bytes))
    assert set(answer) == {"ok", "kek", "sealed_data_key"}
    bare = app_for(world).handle(unwrap_event(world, blob, None, b""))
    assert set(bare) == {"ok", "kek", "data_key"}  # allowed when the setting is off
    assert [(a["outcome"], a.get("sealed")) for a in audit_lines(caplog)] == [
        ("ok", X25519),
        ("ok", None),
    ]


def test_require_sealed_refuses_a_bare_unwrap_before_any_kms_call(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    app = app_for(world, require_sealed=True)
    blob = world.encrypt(b"secret")
    calls = world.wrapper.kms_calls
    answer = app.handle(unwrap_event(world, blob, None, b""))
    assert answer["ok"] is False
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert "KMSBRIDGE_REQUIRE_SEALED" in answer["error"]["message"]
    assert world.wrapper.kms_calls == calls
    key = EphemeralKey.generate(MLKEM768_X25519)
    sealed = app.handle(unwrap_event(world, blob, MLKEM768_X25519, key.public_bytes))
    assert set(sealed) == {"ok", "kek", "sealed_data_key"}
    header = read_header(io.BytesIO(blob))
    opened = key.open(
        base64.b64decode(sealed["sealed_data_key"]),
        org=world.org,
        kek_id=world.kek_id,
        message_id=header.message_id_hex,
    )
    assert opened == world.decryptor(world.org, header.raw)
    assert [a["outcome"] for a in audit_lines(caplog)][:2] == ["INVALID_REQUEST", "ok"]


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_require_sealed_is_read_from_the_environment(raw: str, expected: bool) -> None:
    assert Settings.from_env({"KMSBRIDGE_REQUIRE_SEALED": raw}).require_sealed is expected
    assert Settings.from_env({}).require_sealed is False


def test_a_bad_require_sealed_value_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="KMSBRIDGE_REQUIRE_SEALED"):
        Settings.from_env({"KMSBRIDGE_REQUIRE_SEALED": "yes please"})
