"""The playback client: the handler behind an injected invoker, sealed keys only."""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import pytest

from kmsbridge.crypto.sealing import KEMS, PUBLIC_KEY_BYTES
from kmsbridge.errors import AccessRevoked, IntegrityError, InternalError, NotFound, WrongOrg
from kmsbridge.integrations.aws_lambda.client import LambdaDataKeySource
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.integrations.esdk import esdk_decrypt_stream
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream, read_header
from kmsbridge.services import Services, Settings
from tests.conftest import World

pytestmark = pytest.mark.server


class Recorder:
    """The handler behind a JSON boundary, as lambda.invoke would carry it."""

    def __init__(self, app: LambdaApp) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(json.loads(json.dumps(event)))
        answer = json.loads(json.dumps(self.app.handle(self.events[-1], "req-client")))
        self.responses.append(answer)
        return answer


@pytest.fixture
def recorder(server_world: World) -> Recorder:
    config = Settings(table=server_world.store.table)
    services = Services(config, clients=server_world.clients, decryptor=server_world.decryptor)
    return Recorder(LambdaApp(services))


@pytest.mark.parametrize("kem", KEMS)
def test_plays_back_through_the_function_with_sealed_keys(
    server_world: World, recorder: Recorder, kem: str
) -> None:
    data = os.urandom(150_000)
    blobs = [server_world.encrypt(data, f"call-{i}") for i in range(2)]
    source = LambdaDataKeySource("kmsbridge-decryptor", kem=kem, invoker=recorder)
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blobs[0]), out, org=server_world.org, data_keys=source)
    assert out.getvalue() == data
    stream = esdk_decrypt_stream(io.BytesIO(blobs[1]), org=server_world.org, data_keys=source)
    assert stream.read() == data
    assert [set(e) for e in recorder.events] == [{"op", "org", "header", "response_key"}] * 2
    keys = [base64.b64decode(e["response_key"]["public_key"]) for e in recorder.events]
    assert [len(k) for k in keys] == [PUBLIC_KEY_BYTES[kem]] * 2
    assert keys[0] != keys[1]  # a fresh ephemeral key per request
    assert all("sealed_data_key" in r and "data_key" not in r for r in recorder.responses)


def test_error_responses_become_library_exceptions(server_world: World, recorder: Recorder) -> None:
    blob = server_world.encrypt(b"x")
    header = read_header(io.BytesIO(blob)).raw
    source = LambdaDataKeySource("f", invoker=recorder)
    with pytest.raises(WrongOrg):
        source("globex", header)
    server_world.kms_client.disable_key(KeyId=server_world.key_id)  # type: ignore[attr-defined]
    with pytest.raises(AccessRevoked) as caught:
        source(server_world.org, header)
    assert "refused" in caught.value.message


def answers(response: Any) -> LambdaDataKeySource:
    return LambdaDataKeySource("f", invoker=lambda event: response)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            {"ok": True, "kek": "k", "data_key": base64.b64encode(bytes(32)).decode()},
            IntegrityError,
        ),
        ({"ok": True, "kek": "0" * 64, "sealed_data_key": "AAAA"}, IntegrityError),
        ({"ok": True, "sealed_data_key": "AAAA"}, IntegrityError),
        ({"ok": False, "error": {"code": "NOT_FOUND", "message": "gone"}}, NotFound),
        ({"ok": False, "error": {"code": "WHAT", "message": "?"}}, InternalError),
        ({"ok": False}, InternalError),
        ("not an object", InternalError),
    ],
)
def test_bad_or_unsealed_answers_are_refused(
    kek_pair: Any, response: Any, error: type[Exception]
) -> None:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"x"), out, public_key=kek_pair[1], org="acme", recording_id="r")
    header = read_header(io.BytesIO(out.getvalue())).raw
    with pytest.raises(error):
        answers(response)("acme", header)


def test_sealed_key_for_another_recording_does_not_open(
    server_world: World, recorder: Recorder
) -> None:
    first, second = (
        read_header(io.BytesIO(server_world.encrypt(b"x", f"call-{i}"))).raw for i in range(2)
    )

    def swap(event: dict[str, Any]) -> Any:
        event = event | {"header": base64.b64encode(second).decode()}
        return recorder(event)

    with pytest.raises(IntegrityError, match="does not open"):
        LambdaDataKeySource("f", invoker=swap)(server_world.org, first)


def test_boto_invoker_maps_a_missing_function(server_world: World) -> None:
    header = read_header(io.BytesIO(server_world.encrypt(b"x"))).raw
    source = LambdaDataKeySource("no-such-function", clients=server_world.clients)
    with pytest.raises(NotFound, match="function does not exist"):
        source(server_world.org, header)
