"""Hardening 8, leaks: no key byte string of a run appears in its logs, errors or answers.

Every logger at DEBUG (botocore's request and response logs included) and stdout/stderr
captured, while a run goes through the library (org creation, playback, a damaged
recording, another org, a revoked key), the decryptor Lambda (plain and sealed unwrap,
decrypt to S3, access check, refusals) and the CLI with ``--debug`` (table, org, encrypt,
decrypt, a damaged file, access check). Key byte strings collected during the run: every
plaintext KMS returned or was given (the ESDK data keys wrapping the KEKs), every KEK
private key (PKCS#8 DER), every recording's data key. Each is searched raw, as Python
bytes repr, hex and base64 in: every log record (with its traceback), stdout, stderr,
every error's message, str and repr, and every response (minus the one data key an
``unwrap`` without response key releases on purpose). Plaintext temporary files are 0600
(under umask 0) while they exist and gone after a failure.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.cli.main import main
from kmsbridge.crypto.certificates import pem_chain
from kmsbridge.crypto.sealing import EphemeralKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import KmsBridgeError
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import decrypt_file
from kmsbridge.services import Services, Settings
from tests.conftest import Clock, World, make_world, platform_certifier
from tests.harden import flip, frame_spans, header_length, open_outputs, report


class Secrets:
    """Key byte strings seen in the run, collected by hooks on kmsbridge's KMS clients."""

    def __init__(self) -> None:
        self.items: set[bytes] = set()

    def add(self, secret: bytes) -> None:
        assert len(secret) >= 32
        self.items.add(bytes(secret))

    def kms_answer(self, parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Plaintext"):
            self.add(parsed["Plaintext"])

    def kms_request(self, params: dict[str, Any], **_: Any) -> None:
        if params.get("Plaintext"):
            self.add(params["Plaintext"])

    def forms(self, secret: bytes) -> list[str]:
        return [
            secret.decode("latin-1"),
            repr(secret)[2:-1],
            secret.hex(),
            secret.hex().upper(),
            base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode(),
        ]


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Secrets:
    found = Secrets()
    original = AwsClients.client

    def client(self: AwsClients, service: str, region: str | None = None) -> Any:
        made = original(self, service, region)
        if service == "kms":
            events = made.meta.events
            events.register("after-call.kms", found.kms_answer, unique_id="harden-leaks-a")
            events.register(
                "before-parameter-build.kms", found.kms_request, unique_id="harden-leaks-r"
            )
        return made

    monkeypatch.setattr(AwsClients, "client", client)
    return found


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG and propagating to caplog, whatever earlier set-ups did."""
    manager = logging.root.manager
    saved = {}
    for name in list(manager.loggerDict):
        logger = manager.loggerDict[name]
        if isinstance(logger, logging.Logger):
            saved[name] = (logger.level, logger.propagate, logger.disabled)
            logger.setLevel(logging.NOTSET)
            logger.propagate, logger.disabled = True, False
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, (level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


class Transcript:
    """Everything a person or a log system could see from the run."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.released: set[bytes] = set()  # data keys returned on purpose, in responses only

    def error(self, exc: KmsBridgeError) -> str:
        self.parts += [exc.message, str(exc), repr(exc), json.dumps(exc.to_dict())]
        return exc.code

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        shown = dict(response)
        if "data_key" in shown:
            self.released.add(base64.b64decode(shown.pop("data_key")))
        self.parts.append(json.dumps(shown))
        return response


def library_flow(world: World, tmp_path: Path, t: Transcript, secrets: Secrets) -> None:
    data = os.urandom(3000)
    blob = world.encrypt(data, "call-1", frame_length=256)
    source, target = tmp_path / "in.rec", tmp_path / "out.wav"
    modes: list[int] = []

    def watched(org: str, header: bytes) -> bytes:
        modes.extend(stat.S_IMODE(s.st_mode) for s in open_outputs(tmp_path))
        key = world.decryptor(org, header)
        secrets.add(key)
        return key

    source.write_bytes(blob)
    decrypt_file(source, target, org=world.org, data_keys=watched)
    assert target.read_bytes() == data and stat.S_IMODE(target.stat().st_mode) == 0o600
    target.unlink()
    last = frame_spans(blob)[-1][0]  # frames before the last are written, then it fails
    damaged = [flip(blob, last + 30, 1), flip(blob, 20, 1), blob[:-5], blob + b"\0"]
    for bad, org in [(b, world.org) for b in damaged] + [(blob, "globex")]:
        source.write_bytes(bad)
        with pytest.raises(KmsBridgeError) as info:
            decrypt_file(source, target, org=org, data_keys=watched)
        t.error(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.rec"]
    assert modes and set(modes) == {0o600}
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    world.clock.advance(60)
    with pytest.raises(KmsBridgeError) as info:
        world.decryptor.unwrap(world.org, blob[: header_length(blob)])
    assert t.error(info.value) == "ACCESS_REVOKED"
    world.kms_client.enable_key(KeyId=world.key_id)  # type: ignore[attr-defined]


def lambda_flow(world: World, aws: AwsClients, t: Transcript, secrets: Secrets) -> None:
    s3 = aws.client("s3")
    for bucket in ("recordings", "playback"):
        s3.create_bucket(Bucket=bucket)
    blob = world.encrypt(b"lambda call", "call-2")
    s3.put_object(Bucket="recordings", Key="c2", Body=blob)
    header = base64.b64encode(blob[: header_length(blob)]).decode()
    app = LambdaApp(
        Services(Settings(table=world.store.table, playback_bucket="playback"), clients=aws)
    )
    key = EphemeralKey.generate()
    sealed = {"kem": key.kem, "public_key": base64.b64encode(key.public_bytes).decode()}
    events = [
        {"op": "unwrap", "org": world.org, "header": header},
        {"op": "unwrap", "org": world.org, "header": header, "response_key": sealed},
        {"op": "unwrap", "org": "globex", "header": header},
        {"op": "unwrap", "org": world.org, "header": header[:-8] + "AAAAAAA="},
        {"op": "decrypt", "org": world.org, "source": "s3://recordings/c2"},
        {"op": "access-check", "org": world.org},
        {"op": "unwrap", "org": world.org, "header": "%%%"},
    ]
    outcomes = [t.response(app.handle(event, "req-leaks")) for event in events]
    assert [o["ok"] for o in outcomes] == [True, True, False, False, True, True, False]
    secrets.add(base64.b64decode(outcomes[0]["data_key"]))


def cli_flow(aws: AwsClients, tmp_path: Path, t: Transcript) -> None:
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    data = os.urandom(5000)
    (tmp_path / "in.wav").write_bytes(data)
    enc, out = tmp_path / "c.enc", tmp_path / "c.wav"
    assert main(["--debug", "table", "create", "--table", "cli-keks"]) == 0
    store = KeyStore(aws.client("dynamodb"), "cli-keks")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pem_chain([platform_certifier(store, aws.client("kms")).ca.certificate]))
    runs = [
        ["org", "add", "initech", "--kms-key", arn, "--table", "cli-keks"],
        [
            "encrypt",
            "--ca",
            str(ca),
            "--org",
            "initech",
            "--recording-id",
            "c3",
            "--table",
            "cli-keks",
            str(tmp_path / "in.wav"),
            str(enc),
        ],
        ["decrypt", "--org", "initech", "--table", "cli-keks", str(enc), str(out)],
        ["access", "check", "initech", "--table", "cli-keks"],
    ]
    assert [main(["--debug", *argv]) for argv in runs] == [0] * len(runs)
    assert out.read_bytes() == data
    out.unlink()
    enc.write_bytes(flip(enc.read_bytes(), len(enc.read_bytes()) - 30, 1))
    assert (
        main(["--debug", "decrypt", "--org", "initech", "--table", "cli-keks", str(enc), str(out)])
        != 0
    )
    assert not out.exists()


def collect_keys(world: World, aws: AwsClients, cli_recording: Path, secrets: Secrets) -> None:
    """Every KEK private key of both tables, and the data key of the CLI's recording."""
    cli_store = KeyStore(aws.client("dynamodb"), "cli-keks")
    for store, org in ((world.store, "acme"), (world.store, "duo"), (cli_store, "initech")):
        for record in store.list_keks(org):
            assert record.wrapped_private_key is not None
            secrets.add(
                world.wrapper.unwrap(
                    record.wrapped_private_key,
                    org=org,
                    kek_id=record.kek_id,
                    kms_key_arns=record.kms_keys,
                    registered=record.kms_keys,
                )
            )
    blob = flip(cli_recording.read_bytes(), len(cli_recording.read_bytes()) - 30, 1)
    decryptor = Decryptor(cli_store, world.wrapper)
    secrets.add(decryptor("initech", blob[: header_length(blob)]))


def test_no_key_byte_string_in_logs_errors_or_responses(
    aws: AwsClients,
    secrets: Secrets,
    everything_logged: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    old_umask = os.umask(0)
    try:
        t = Transcript()
        world = make_world(aws, Clock(), org="acme")
        # Two KMS keys: the ESDK sends the data key to KMS Encrypt for the second one.
        kms = aws.client("kms")
        duo_keys = [kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2)]
        create_org(world.store, world.wrapper, "duo", duo_keys)
        (tmp_path / "lib").mkdir()
        library_flow(world, tmp_path / "lib", t, secrets)
        lambda_flow(world, aws, t, secrets)
        (tmp_path / "cli").mkdir()
        cli_flow(aws, tmp_path / "cli", t)
    finally:
        os.umask(old_umask)
    collect_keys(world, aws, tmp_path / "cli" / "c.enc", secrets)
    out, err = capfd.readouterr()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logs = [formatter.format(r) for r in everything_logged.records]
    text = "\n".join([*logs, out, err, *t.parts])
    hits = [
        (secret.hex()[:12], form[:12], text[text.index(form) - 300 : text.index(form)])
        for secret in secrets.items
        for form in secrets.forms(secret)
        if form in text
    ]
    report(
        "leaks",
        {
            "secrets": len(secrets.items),
            "forms_each": 6,
            "log_records": len(logs),
            "searched_chars": len(text),
            "hits": len(hits),
        },
    )
    # Data keys of 3 recordings, 3 KEK private keys, the 3 KMS data keys wrapping them.
    assert len(secrets.items) == 9 and len(logs) > 100
    assert hits == []
