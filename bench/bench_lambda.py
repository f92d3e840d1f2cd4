"""The decryptor Lambda: cold import, zip size, warm unwrap latency, each against a baseline
measured in the same run.

- Cold import: ``import handler`` (lambda/decryptor/handler.py and everything it imports)
  versus ``import boto3`` alone, each in fresh interpreters, alternating, best of N.
  Goal: at most 1.3x.
- Zip size: ``dist/decryptor.zip`` built for this machine's architecture. Goal: 20 MB.
- Warm unwrap: the handler answering ``unwrap`` with a sealed (X25519) key, the KEK
  cached and each request a new recording (so the data-key cache never answers), versus
  one RSA-3072 OAEP decrypt, which every such unwrap contains. Goal: at most 1.1x.

Run: ``python -m bench.bench_lambda`` (or through ``python -m bench``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Result, best_of

ROOT = Path(__file__).resolve().parent.parent
HANDLER_DIR = ROOT / "lambda" / "decryptor"
_TIMED_IMPORT = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


def cold_import(module: str, cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run(
        [sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def bench_cold_import(repeats: int) -> Result:
    handler, boto3 = [], []
    for _ in range(repeats):  # alternating, so drift of the machine hits both alike
        handler.append(cold_import("handler", HANDLER_DIR))
        boto3.append(cold_import("boto3", HANDLER_DIR))
    ours, base = min(handler), min(boto3)
    return Result(
        "lambda",
        "cold import of the decryptor handler",
        f"{ours * 1000:.0f} ms",
        f"import boto3 alone: {base * 1000:.0f} ms",
        ours / base,
        "<= 1.3x",
    )


def bench_zip_size() -> Result:
    from kmsbridge.integrations.aws_lambda.build import build, host_arch

    with tempfile.TemporaryDirectory() as tmp:
        [decryptor] = [b for b in build(Path(tmp), host_arch()) if b.name == "decryptor"]
    size = decryptor.size / 1e6
    return Result(
        "lambda",
        f"decryptor.zip ({host_arch()})",
        f"{size:.2f} MB",
        "goal 20 MB",
        size / 20,
        "<= 1.0x",
    )


def bench_warm_unwrap(requests: int) -> Result:
    from moto import mock_aws

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        app, events, private = _unwrap_world(requests)
        with contextlib.redirect_stdout(io.StringIO()):  # EMF and audit lines
            app.handle(events[0], "warm-up")
            times = []
            for event in events[1:]:
                times.append(best_of(1, lambda event=event: app.handle(event, "bench")))
    from kmsbridge.crypto.kek import KekPublicKey
    from kmsbridge.formats import oaep_padding

    wrapped = KekPublicKey.from_key(private.public_key()).wrap_dek(os.urandom(32))
    rsa_times = [
        best_of(1, lambda: private.decrypt(wrapped, oaep_padding())) for _ in range(len(times))
    ]
    # Medians of both: each request is a different recording, so no best-of for ours.
    ours, rsa = sorted(times)[len(times) // 2], sorted(rsa_times)[len(rsa_times) // 2]
    return Result(
        "lambda",
        "warm unwrap, sealed X25519 (median)",
        f"{ours * 1000:.2f} ms",
        f"one RSA-3072 OAEP decrypt (median): {rsa * 1000:.2f} ms",
        ours / rsa,
        "<= 1.1x",
    )


def _unwrap_world(requests: int) -> tuple[Any, list[dict[str, Any]], Any]:
    from kmsbridge.aws import AwsClients, AwsSettings
    from kmsbridge.crypto.kek import generate_kek
    from kmsbridge.crypto.sealing import EphemeralKey
    from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
    from kmsbridge.keys.kms import KekWrapper
    from kmsbridge.keys.table import KeyStore
    from kmsbridge.lifecycle.rotation import create_org
    from kmsbridge.recordings.codec import encrypt_stream, read_header
    from kmsbridge.services import Services, Settings

    clients = AwsClients(AwsSettings(region="us-east-1"))
    arn = clients.client("kms").create_key()["KeyMetadata"]["Arn"]
    store = KeyStore(clients.client("dynamodb"), "bench-keks")
    store.create_table()
    _, kek = create_org(store, KekWrapper(clients), "acme", [arn])
    app = LambdaApp(Services(Settings(table="bench-keks"), clients=clients))
    private, _ = generate_kek()  # the baseline's key, same size as the org's
    from kmsbridge.crypto.kek import KekPublicKey

    public = KekPublicKey.from_der(kek.public_key)
    events = []
    for i in range(requests + 1):
        out = io.BytesIO()
        encrypt_stream(io.BytesIO(b"x"), out, public_key=public, org="acme", recording_id=f"r{i}")
        header = read_header(io.BytesIO(out.getvalue())).raw
        key = EphemeralKey.generate("X25519")
        events.append(
            {
                "op": "unwrap",
                "org": "acme",
                "header": base64.b64encode(header).decode(),
                "response_key": {
                    "kem": "X25519",
                    "public_key": base64.b64encode(key.public_bytes).decode(),
                },
            }
        )
    return app, events, private


def run(quick: bool = False) -> list[Result]:
    return [
        bench_cold_import(3 if quick else 9),
        bench_zip_size(),
        bench_warm_unwrap(20 if quick else 200),
    ]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        ratio = f"{result.ratio:.2f}x" if result.ratio is not None else "-"
        print(
            f"{result.name}: {result.measured} vs {result.baseline} = {ratio} (goal {result.goal})"
        )
