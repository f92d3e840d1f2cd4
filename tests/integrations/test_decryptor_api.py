"""The decryptor Lambda's event validation: every bad field is INVALID_REQUEST, named,
before any AWS call (the app's clients point at a closed port, so a call would fail
differently)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.sealing import EphemeralKey
from kmsbridge.decryptor.access import access_state
from kmsbridge.errors import ConfigurationError
from kmsbridge.formats import MAX_HEADER_BYTES
from kmsbridge.integrations.aws_lambda.decryptor_api import (
    LambdaApp,
    parse_request,
)
from kmsbridge.services import Services, Settings

DEAD = AwsSettings(
    region="us-east-1",
    endpoint_url="http://127.0.0.1:9",
    max_attempts=1,
    connect_timeout=0.2,
    read_timeout=0.2,
)
HEADER = base64.b64encode(b"\x02" * 100).decode()
X_KEY = base64.b64encode(EphemeralKey.generate("X25519").public_bytes).decode()


@pytest.fixture(scope="module")
def app() -> LambdaApp:
    config = Settings(table="t", playback_bucket="playback", allowed_orgs=None)
    return LambdaApp(Services(config, clients=AwsClients(DEAD)))


def unwrap(**fields: Any) -> dict[str, Any]:
    return {"op": "unwrap", "org": "acme", "header": HEADER} | fields


def decrypt(**fields: Any) -> dict[str, Any]:
    return {"op": "decrypt", "org": "acme", "source": "s3://recordings/a/b.wav"} | fields


BAD_EVENTS = [
    ([], "event must be a JSON object"),
    ("unwrap", "event must be a JSON object"),
    ({}, "op must be one of"),
    ({"op": "rotate", "org": "acme"}, "op must be one of"),
    ({"op": 1, "org": "acme"}, "op must be one of"),
    ({"op": "access-check"}, "org is missing"),
    ({"op": "access-check", "org": "bad org"}, "org must be"),
    ({"op": "access-check", "org": "a" * 65}, "org must be"),
    ({"op": "access-check", "org": ""}, "org must be"),
    ({"op": "access-check", "org": 7}, "org must be"),
    ({"op": "access-check", "org": "acme", "header": HEADER}, "unexpected field 'header'"),
    ({"op": "unwrap", "org": "acme"}, "header is missing"),
    (unwrap(header=12), "header must be a base64 string"),
    (unwrap(header=["AA=="]), "header must be a base64 string"),
    (unwrap(header="not base64!"), "header is not valid base64"),
    (unwrap(header="QUJD="), "header is not valid base64"),
    (unwrap(header=""), "header is empty"),
    (unwrap(header="A" * 30_000), f"header is longer than {MAX_HEADER_BYTES} bytes"),
    (
        unwrap(header=base64.b64encode(bytes(MAX_HEADER_BYTES + 1)).decode()),
        f"header is longer than {MAX_HEADER_BYTES} bytes",
    ),
    (unwrap(response_key="X25519"), "response_key must be an object"),
    (unwrap(response_key={"kem": "X25519"}), "exactly kem and public_key"),
    (unwrap(response_key={"kem": "X25519", "public_key": X_KEY, "x": 1}), "exactly kem"),
    (unwrap(response_key={"kem": "RSA", "public_key": X_KEY}), "kem must be one of"),
    (unwrap(response_key={"kem": "X25519", "public_key": 5}), "public_key must be a base64"),
    (unwrap(response_key={"kem": "X25519", "public_key": "%%%"}), "public_key is not valid"),
    (unwrap(response_key={"kem": "X25519", "public_key": "AAAA"}), "must be 32 bytes"),
    (
        unwrap(response_key={"kem": "MLKEM768_X25519", "public_key": X_KEY}),
        "must be 1216 bytes",
    ),
    (unwrap(response_key={"kem": "X25519", "public_key": "A" * 2000}), "longer than 32 bytes"),
    ({"op": "decrypt", "org": "acme"}, "source is missing"),
    (decrypt(source=3), "source must be an s3://bucket/key URL"),
    (decrypt(source="https://recordings/a"), "source must be an s3://bucket/key URL"),
    (decrypt(source="s3://Recordings/a"), "valid bucket"),
    (decrypt(source="s3://recordings/"), "valid bucket"),
    (decrypt(source="s3://recordings"), "valid bucket"),
    (decrypt(source="s3://r/a"), "valid bucket"),
    (decrypt(source="s3://recordings/" + "k" * 1025), "valid bucket"),
    (decrypt(expires_in=59), "expires_in must be"),
    (decrypt(expires_in=3601), "expires_in must be"),
    (decrypt(expires_in="300"), "expires_in must be"),
    (decrypt(expires_in=True), "expires_in must be"),
    (decrypt(expires_in=300.0), "expires_in must be"),
    (decrypt(url="x"), "unexpected field 'url'"),
]


@pytest.mark.parametrize(("event", "words"), BAD_EVENTS)
def test_bad_events_are_invalid_requests_naming_the_field(
    app: LambdaApp, event: Any, words: str
) -> None:
    response = app.handle(event, "req-1")
    assert response == {
        "ok": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": response["error"]["message"],
            "retryable": False,
        },
    }
    assert words in response["error"]["message"]
    assert app.kms.kms_calls == 0


def test_org_outside_the_allowed_list_is_an_invalid_request(aws_credentials: None) -> None:
    config = Settings(table="t", allowed_orgs=frozenset({"acme", "globex"}))
    app = LambdaApp(Services(config, clients=AwsClients(DEAD)))
    response = app.handle({"op": "access-check", "org": "initech"})
    assert response["error"]["code"] == "INVALID_REQUEST"
    assert "not served by this decryptor" in response["error"]["message"]


def test_valid_events_parse_into_requests() -> None:
    request = parse_request(decrypt(expires_in=60), frozenset({"acme"}))
    assert (request.op, request.org, str(request.source), request.expires_in) == (
        "decrypt",
        "acme",
        "s3://recordings/a/b.wav",
        60,
    )
    request = parse_request(unwrap(response_key={"kem": "X25519", "public_key": X_KEY}))
    assert (request.kem, len(request.public_key), request.header) == ("X25519", 32, b"\x02" * 100)
    assert parse_request(decrypt()).expires_in == 300


def test_config_from_environment() -> None:
    config = Settings.from_env(
        {
            "KMSBRIDGE_TABLE": "keks",
            "KMSBRIDGE_PLAYBACK_BUCKET": "play",
            "KMSBRIDGE_ALLOWED_ORGS": " acme, globex ,",
        }
    )
    assert config.table == "keks"
    assert config.playback_bucket == "play"
    assert config.allowed_orgs == frozenset({"acme", "globex"})
    assert Settings.from_env({}).allowed_orgs is None
    assert Settings.from_env({}).table == "kmsbridge-keks"
    assert Settings.from_env({"KMSBRIDGE_TABLE": "keks"}, table="other").table == "other"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KMSBRIDGE_ALLOWED_ORGS", "acme,bad org"),
        ("KMSBRIDGE_MAX_AGE_SECONDS", "soon"),
        ("KMSBRIDGE_MAX_AGE_SECONDS", "7200"),
        ("KMSBRIDGE_ROTATION_LEAD_HOURS", "-1"),
    ],
)
def test_a_bad_setting_is_one_configuration_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        (["ok", "ok"], "ok"),
        (["ok", "destroyed"], "ok"),
        (["ACCESS_REVOKED", "ok"], "partly-revoked"),
        (["ACCESS_REVOKED", "ACCESS_REVOKED", "destroyed"], "revoked"),
        (["KMS_UNAVAILABLE", "ACCESS_REVOKED"], "revoked"),
        (["KMS_UNAVAILABLE", "ok"], "unavailable"),
        (["INTEGRITY"], "integrity"),
        (["NOT_FOUND", "ok"], "not-found"),
        (["UNAVAILABLE"], "unavailable"),
        (["INTERNAL"], "error"),
        (["destroyed"], "no-keks"),
        ([], "no-keks"),
    ],
)
def test_access_state_summarises_the_kek_outcomes(outcomes: list[str], state: str) -> None:
    assert access_state(outcomes) == state
