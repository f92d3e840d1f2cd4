"""The built dist/decryptor.zip, run the way Lambda runs it.

The zip is unpacked into a folder and started with ``python -m awslambdaric
handler.handler`` in an interpreter that sees only that folder and a stand-in for the
Lambda runtime's own folder (awslambdaric and boto3 with their dependencies, which the
real runtime provides): no site-packages, no development virtualenv. It polls a small
Lambda Runtime API server of this test on 127.0.0.1 for events, and reaches moto's
server through AWS_ENDPOINT_URL. (moto's own Lambda invoke needs Docker to run code.)
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.crypto.sealing import KEMS
from kmsbridge.integrations.aws_lambda.build import (
    build,
    host_arch,
    package_files,
    source_root,
    write_zip,
)
from kmsbridge.integrations.aws_lambda.client import LambdaDataKeySource
from kmsbridge.recordings.codec import decrypt_stream, read_header
from tests.conftest import REGION, World

pytestmark = pytest.mark.server
# What the Lambda Python runtime itself provides beside the function's zip.
RUNTIME_DISTRIBUTIONS = (
    "awslambdaric",
    "simplejson",
    "snapshot-restore-py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)
API = "/2018-06-01/runtime"


class RuntimeApi:
    """The Lambda Runtime API's invocation loop: next, response, error, init error."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: dict[str, tuple[str, bytes]] = {}
        self.changed = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, event: Any, timeout: float = 60.0) -> Any:
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(event).encode()))
        with self.changed:
            done = self.changed.wait_for(
                lambda: request_id in self.results or "init" in self.results, timeout
            )
        assert done, "the runtime did not answer"
        kind, body = self.results.get(request_id) or self.results["init"]
        assert kind == "response", f"{kind}: {body[:500]!r}"
        return json.loads(body)

    def _record(self, key: str, kind: str, body: bytes) -> None:
        with self.changed:
            self.results[key] = (kind, body)
            self.changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")  # the native client needs it
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                assert self.path == f"{API}/invocation/next"
                request_id, body = api.pending.get()
                self.reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                        "Lambda-Runtime-Invoked-Function-Arn": (
                            f"arn:aws:lambda:{REGION}:123456789012:function:kmsbridge-decryptor"
                        ),
                    },
                )

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(API + "/").split("/")
                if parts == ["init", "error"]:
                    api._record("init", "init-error", body)
                else:
                    api._record(parts[1], parts[2], body)
                self.reply(202, b"{}")

        return Handler


def runtime_folder(target: Path) -> Path:
    """Links to the runtime's own packages, taken from this environment."""
    target.mkdir()
    for name in RUNTIME_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        site = Path(str(dist.locate_file("")))
        for top in {file.parts[0] for file in dist.files or []}:
            if top not in ("..", "__pycache__") and not top.endswith(".dist-info"):
                (target / top).symlink_to(site / top)
    return target


@pytest.fixture(scope="module")
def decryptor_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built for this machine's Python so that it runs here; the wheels of the zips for the
    # Lambda runtime are checked in tests/integrations/test_lambda_wheels.py.
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = build(tmp_path_factory.mktemp("dist"), host_arch(), python_version=here)
    [decryptor] = [b for b in built if b.name == "decryptor"]
    return decryptor.path


@pytest.fixture
def lambda_runtime(
    decryptor_zip: Path, server_world: World, moto_server: str, tmp_path: Path
) -> Iterator[tuple[RuntimeApi, Path, dict[str, str]]]:
    task = tmp_path / "task"
    with zipfile.ZipFile(decryptor_zip) as archive:
        archive.extractall(task)
    runtime = runtime_folder(tmp_path / "runtime")
    s3 = server_world.clients.client("s3")
    buckets = {
        "recordings": f"rec-{os.urandom(3).hex()}",
        "playback": f"play-{os.urandom(3).hex()}",
    }
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    api = RuntimeApi()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{task}:{runtime}",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "kmsbridge-decryptor",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "KMSBRIDGE_TABLE": server_world.store.table,
        "KMSBRIDGE_PLAYBACK_BUCKET": buckets["playback"],
        "KMSBRIDGE_MAX_AGE_SECONDS": "0",
    }
    python = [sys._base_executable, "-S", "-s"]  # no site: only PYTHONPATH and the stdlib
    stdout = tmp_path / "stdout.log"
    with open(stdout, "wb") as out:
        process = subprocess.Popen(
            [*python, "-m", "awslambdaric", "handler.handler"],
            cwd=task,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield api, stdout, env | buckets
    finally:
        process.kill()
        process.wait()
        api.server.shutdown()


def test_the_zip_isolated_interpreter_cannot_see_the_dev_environment(
    lambda_runtime: tuple[RuntimeApi, Path, dict[str, str]],
) -> None:
    _, _, env = lambda_runtime
    code = "import kmsbridge, cryptography, awslambdaric, boto3, sys; print(cryptography.__file__)"
    python = [sys._base_executable, "-S", "-s"]
    task = env["PYTHONPATH"].split(":")[0]
    seen = subprocess.run([*python, "-c", code], env=env, cwd=task, capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.startswith(task)
    for absent in ("moto", "pytest", "kmsbridge.devtools.embedded", "kmsbridge.cli"):
        probe = subprocess.run(
            [*python, "-c", f"import {absent}"], env=env, cwd=task, capture_output=True
        )
        assert probe.returncode != 0, absent


def test_the_zip_serves_every_op_under_awslambdaric(
    lambda_runtime: tuple[RuntimeApi, Path, dict[str, str]], server_world: World
) -> None:
    api, stdout, env = lambda_runtime
    w = server_world
    assert api.invoke({"op": "access-check", "org": w.org})["state"] == "ok"
    data = os.urandom(200_000)
    blob = w.encrypt(data)
    for kem in KEMS:
        source = LambdaDataKeySource("kmsbridge-decryptor", kem=kem, invoker=api.invoke)
        out = io.BytesIO()
        decrypt_stream(io.BytesIO(blob), out, org=w.org, data_keys=source)
        assert out.getvalue() == data
    w.clients.client("s3").put_object(Bucket=env["recordings"], Key="c.wav", Body=blob)
    played = api.invoke(
        {"op": "decrypt", "org": w.org, "source": f"s3://{env['recordings']}/c.wav"}
    )
    with urllib.request.urlopen(played["url"]) as got:
        assert got.read() == data
    assert api.invoke({"op": "nope"})["error"]["code"] == "INVALID_REQUEST"
    assert api.invoke(["not", "an", "object"])["error"]["code"] == "INVALID_REQUEST"
    header = base64.b64encode(read_header(io.BytesIO(blob)).raw).decode()
    assert api.invoke({"op": "unwrap", "org": "globex", "header": header})["error"]["code"] == (
        "WRONG_ORG"
    )
    w.kms_client.disable_key(KeyId=w.key_id)  # type: ignore[attr-defined]
    revoked = api.invoke({"op": "unwrap", "org": w.org, "header": header})
    assert revoked["error"] == {
        "code": "ACCESS_REVOKED",
        "message": revoked["error"]["message"],
        "retryable": False,
    }
    assert api.invoke({"op": "access-check", "org": w.org})["state"] == "revoked"
    lines = [json.loads(x) for x in stdout.read_text().splitlines() if x.startswith("{")]
    assert sum("ColdStart" in x for x in lines) == 1
    assert {(x["op"], x["outcome"]) for x in lines if x.get("audit")} >= {
        ("access-check", "ok"),
        ("unwrap", "ok"),
        ("decrypt", "ok"),
        ("unwrap", "ACCESS_REVOKED"),
    }


def test_zips_are_reproducible(tmp_path: Path) -> None:
    files = package_files(source_root())
    assert "kmsbridge/crypto/sealing.py" in files
    assert not any(name.startswith(("kmsbridge/cli/", "kmsbridge/devtools/")) for name in files)
    first = write_zip(tmp_path / "a.zip", files, "a")
    copies = {}
    for name, path in files.items():  # the same content, other paths and times
        copies[name] = tmp_path / "copy" / name
        copies[name].parent.mkdir(parents=True, exist_ok=True)
        copies[name].write_bytes(path.read_bytes())
        os.utime(copies[name], (0, 0))
    second = write_zip(tmp_path / "b.zip", copies, "b")
    assert first.sha256 == second.sha256
