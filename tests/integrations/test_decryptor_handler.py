"""lambda/decryptor/handler.py as Lambda calls it: config from the environment, clients
once, JSON lines on stdout (audit, EMF metrics, cold start), and no secret in any log."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
import os
import urllib.request
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

from kmsbridge.crypto.sealing import KEMS
from kmsbridge.integrations.aws_lambda.client import LambdaDataKeySource
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaHandler
from kmsbridge.recordings.codec import decrypt_stream, read_header
from tests.conftest import World

pytestmark = pytest.mark.server
HANDLER = Path(__file__).resolve().parents[2] / "lambda" / "decryptor" / "handler.py"


def load_handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decryptor_handler", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(server_world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    s3 = server_world.clients.client("s3")
    names = {"recordings": f"rec-{os.urandom(3).hex()}", "playback": f"play-{os.urandom(3).hex()}"}
    for bucket in names.values():
        s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("KMSBRIDGE_TABLE", server_world.store.table)
    monkeypatch.setenv("KMSBRIDGE_PLAYBACK_BUCKET", names["playback"])
    monkeypatch.setenv("KMSBRIDGE_ALLOWED_ORGS", f"{server_world.org},globex")
    monkeypatch.setenv("KMSBRIDGE_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "kmsbridge-decryptor")
    return names


def context(request_id: str) -> Any:
    return SimpleNamespace(aws_request_id=request_id)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_handler_answers_logs_audit_and_metrics_as_json_lines(
    server_world: World, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_handler_module()
    blob = server_world.encrypt(b"call audio")
    header = base64.b64encode(read_header(io.BytesIO(blob)).raw).decode()
    event = {"op": "unwrap", "org": server_world.org, "header": header}
    assert module.handler(event, context("req-1"))["ok"] is True
    assert module.handler({"op": "nope"}, context("req-2"))["error"]["code"] == "INVALID_REQUEST"
    refused = module.handler({"op": "access-check", "org": "initech"}, context("req-3"))
    assert refused["error"]["code"] == "INVALID_REQUEST"
    lines = json_lines(capsys.readouterr().out)  # every stdout line is one JSON object
    cold = [x for x in lines if "ColdStart" in x]
    assert [c["Function"] for c in cold] == ["kmsbridge-decryptor"]
    audits = [x for x in lines if x.get("audit") == "kmsbridge"]
    assert [(a["op"], a["outcome"], a["request_id"]) for a in audits] == [
        ("unwrap", "ok", "req-1"),
        ("invalid", "INVALID_REQUEST", "req-2"),
        ("access-check", "INVALID_REQUEST", "req-3"),
    ]
    assert audits[0]["kek"] == server_world.kek_id and audits[0]["recording"] == "call-1"
    metrics = [x for x in lines if "Requests" in x]
    assert [(m["Op"], m["Outcome"]) for m in metrics] == [
        ("unwrap", "ok"),
        ("invalid", "INVALID_REQUEST"),
        ("access-check", "INVALID_REQUEST"),
    ]
    emf = metrics[0]["_aws"]["CloudWatchMetrics"][0]
    assert emf["Dimensions"] == [["Function", "Op", "Outcome"]]
    assert {m["Name"] for m in emf["Metrics"]} == {"Requests", "Duration"}


def test_misconfiguration_is_an_internal_json_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMSBRIDGE_MAX_AGE_SECONDS", "forever")
    response = LambdaHandler()({"op": "access-check", "org": "acme"}, context("r"))
    assert response["ok"] is False
    assert response["error"]["code"] == "INTERNAL"
    assert "KMSBRIDGE_MAX_AGE_SECONDS" in response["error"]["message"]


def test_a_decryptor_that_cannot_start_says_so_on_every_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMSBRIDGE_ALLOWED_ORGS", "acme,not an org")
    handler = LambdaHandler()
    for request in ("r1", "r2", "r3"):
        response = handler({"op": "access-check", "org": "acme"}, context(request))
        assert response["error"]["code"] == "INTERNAL"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    failures = [x for x in lines if "StartFailures" in x]
    assert len(failures) == 3
    assert failures[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "StartFailures", "Unit": "Count"}
    ]


def secret_forms(secret: bytes) -> list[str]:
    """Raw (as Python would print it), hex, and base64 at each alignment."""
    forms = [repr(secret)[2:-1][:40], secret.hex(), secret.hex().upper()]
    for shift in range(3):
        piece = secret[shift : shift + 24]
        forms += [base64.b64encode(piece).decode(), base64.urlsafe_b64encode(piece).decode()]
    return forms


def kms_plaintext(w: World, blob: bytes) -> bytes:
    """The data key KMS returns for a wrapped KEK (what a botocore DEBUG log would show)."""
    header, _ = deserialize_header(io.BytesIO(blob))
    [edk] = header.encrypted_data_keys
    answer = w.kms_client.decrypt(  # type: ignore[attr-defined]
        CiphertextBlob=edk.encrypted_data_key, EncryptionContext=header.encryption_context
    )
    return bytes(answer["Plaintext"])


def test_a_full_run_logs_no_key_bytes(
    server_world: World,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    module = load_handler_module()
    w = server_world
    responses: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Any:
        answer = module.handler(json.loads(json.dumps(event)), context("req-log"))
        responses.append(answer)
        return answer

    plaintext = os.urandom(300_000)
    blob = w.encrypt(plaintext)
    secrets = []
    for kem in KEMS:
        source = LambdaDataKeySource("kmsbridge-decryptor", kem=kem, invoker=invoke)
        out = io.BytesIO()
        decrypt_stream(io.BytesIO(blob), out, org=w.org, data_keys=source)
        assert out.getvalue() == plaintext
    secrets.append(w.decryptor(w.org, read_header(io.BytesIO(blob)).raw))
    record = w.store.get_kek(w.org, w.kek_id)
    assert record.wrapped_private_key is not None
    secrets.append(
        w.wrapper.unwrap(
            record.wrapped_private_key,
            org=w.org,
            kek_id=w.kek_id,
            kms_key_arns=record.kms_keys,
            registered=record.kms_keys,
        )
    )
    secrets.append(kms_plaintext(w, record.wrapped_private_key))
    secrets.append(plaintext[:4096])
    s3 = w.clients.client("s3")
    s3.put_object(Bucket=env["recordings"], Key="a.wav", Body=blob)
    played = invoke({"op": "decrypt", "org": w.org, "source": f"s3://{env['recordings']}/a.wav"})
    with urllib.request.urlopen(played["url"]) as got:
        assert got.read() == plaintext
    assert invoke({"op": "access-check", "org": w.org})["state"] == "ok"
    w.kms_client.disable_key(KeyId=w.key_id)  # type: ignore[attr-defined]
    header = base64.b64encode(read_header(io.BytesIO(blob)).raw).decode()
    revoked = invoke({"op": "unwrap", "org": w.org, "header": header})
    assert revoked["error"]["code"] == "ACCESS_REVOKED"

    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    shown = json.dumps(
        [{k: v for k, v in r.items() if k not in ("sealed_data_key", "url")} for r in responses]
    )
    assert "unwrap" in logs and len(logs) > 1000  # the capture did see the run
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in logs
            assert form not in shown
