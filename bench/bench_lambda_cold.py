"""The decryptor Lambda's cold first unwrap against its floor, measured in the same run.

Ours: the handler module's import (with what it builds at init) and its first ``unwrap``
(key table read, KMS unwrap of the KEK through the ESDK, RSA, header check). The floor:
``import boto3`` and the ``cryptography`` modules, a KMS and a DynamoDB client from plain
boto3, one DynamoDB GetItem, one KMS Decrypt (of the PKCS#8 KEK itself), one RSA-3072
key load (without OpenSSL's key check, as ours) and one OAEP decrypt.

Each side is two fresh interpreters, alternating with the other side's: (A) the imports
and init, timed from the start with no AWS at all; (B) the calls, against moto in process
(``mock_aws``), timed after moto and the world are set up. The sum of the best A and the
best B is the cold first unwrap; moto's own import and set-up are in neither. Without
SnapStart a cold container pays all of it; with SnapStart (see README) a restored
container starts after A, with its clients rebuilt by the after-restore hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import Result

ROOT = Path(__file__).resolve().parent.parent
HANDLER_DIR = ROOT / "lambda" / "decryptor"
TABLE = "bench-cold"

_IMPORT_OURS = """
import time; t = time.perf_counter()
import handler
print(time.perf_counter() - t)
"""
_IMPORT_FLOOR = """
import time; t = time.perf_counter()
import boto3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
session = boto3.Session()
kms, dynamodb = session.client("kms"), session.client("dynamodb")
print(time.perf_counter() - t)
"""
# Phase B: moto and the world first (untimed), then the first call (timed).
_WORLD = """
import base64, io, json, sys, time
from moto import mock_aws
mock = mock_aws(); mock.start()
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.kek import KekPublicKey, generate_kek, private_key_pkcs8
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import encrypt_stream, read_header
setup = AwsClients(AwsSettings(region="us-east-1"))
arn = setup.client("kms").create_key()["KeyMetadata"]["Arn"]
store = KeyStore(setup.client("dynamodb"), "{table}")
store.create_table()
_, kek = create_org(store, KekWrapper(setup), "acme", [arn])
out = io.BytesIO()
encrypt_stream(io.BytesIO(b"x"), out, public_key=KekPublicKey.from_der(kek.public_key),
               org="acme", recording_id="r1")
header = read_header(io.BytesIO(out.getvalue())).raw
"""
_CALL_OURS = """
sys.path.insert(0, "{handler_dir}")
import handler
event = {{"op": "unwrap", "org": "acme", "header": base64.b64encode(header).decode()}}
t = time.perf_counter()
response = handler.handler(event, None)
elapsed = time.perf_counter() - t
assert response["ok"], response
print(elapsed)
"""
# Restored from a snapshot: init ran in snap-start mode and the before-snapshot hook ran
# (untimed); timed: the after-restore hook (re-seed, clients rebuilt) and the first unwrap.
_CALL_RESTORED = """
import os
os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
sys.path.insert(0, "{handler_dir}")
import handler
from snapshot_restore_py import get_after_restore, get_before_snapshot
for func, args, kwargs in get_before_snapshot():
    func(*args, **kwargs)
event = {{"op": "unwrap", "org": "acme", "header": base64.b64encode(header).decode()}}
t = time.perf_counter()
for func, args, kwargs in get_after_restore():
    func(*args, **kwargs)
response = handler.handler(event, None)
elapsed = time.perf_counter() - t
assert response["ok"], response
print(elapsed)
"""
_CALL_FLOOR = """
private, public = generate_kek()
oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
context = {{"kmsbridge:org": "acme"}}
blob = setup.client("kms").encrypt(KeyId=arn, Plaintext=private_key_pkcs8(private),
                                   EncryptionContext=context)["CiphertextBlob"]
setup.client("dynamodb").put_item(TableName="{table}", Item={{"org": {{"S": "floor"}},
    "kek": {{"S": "k"}}, "blob": {{"B": blob}}}})
wrapped = public.wrap_dek(b"k" * 32)
import boto3
session = boto3.Session()
kms, dynamodb = session.client("kms"), session.client("dynamodb")
t = time.perf_counter()
item = dynamodb.get_item(TableName="{table}", Key={{"org": {{"S": "floor"}}, "kek": {{"S": "k"}}}})
pkcs8 = kms.decrypt(CiphertextBlob=item["Item"]["blob"]["B"], EncryptionContext=context)
key = serialization.load_der_private_key(pkcs8["Plaintext"], None,
                                         unsafe_skip_rsa_key_validation=True)
key.decrypt(wrapped, oaep)
print(time.perf_counter() - t)
"""


def _seconds(code: str, env: dict[str, str], cwd: Path = ROOT) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"cold-path child failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    return env | {
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KMSBRIDGE_TABLE": TABLE,
    }


def cold_first_unwrap(repeats: int) -> list[Result]:
    env = _env()
    world = _WORLD.format(table=TABLE)
    names = ("ours-a", "ours-b", "floor-a", "floor-b", "restored")
    phases: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeats):  # alternating, so drift of the machine hits both alike
        phases["ours-a"].append(_seconds(_IMPORT_OURS, env, HANDLER_DIR))
        phases["floor-a"].append(_seconds(_IMPORT_FLOOR, env))
        phases["ours-b"].append(_seconds(world + _CALL_OURS.format(handler_dir=HANDLER_DIR), env))
        phases["floor-b"].append(_seconds(world + _CALL_FLOOR.format(table=TABLE), env))
        phases["restored"].append(
            _seconds(world + _CALL_RESTORED.format(handler_dir=HANDLER_DIR), env)
        )
    best = {k: min(v) for k, v in phases.items()}
    ours, floor = best["ours-a"] + best["ours-b"], best["floor-a"] + best["floor-b"]
    spread = {k: f"{min(v) * 1000:.0f}-{max(v) * 1000:.0f}" for k, v in phases.items()}
    print(json.dumps({"cold-first-unwrap runs (ms)": spread}), file=sys.stderr)
    return [
        Result(
            "lambda",
            "cold first unwrap: import + init + first unwrap (no SnapStart), moto in process",
            f"{ours * 1000:.0f} ms (import+init {best['ours-a'] * 1000:.0f}, "
            f"first unwrap {best['ours-b'] * 1000:.0f})",
            f"floor: import boto3 + 2 clients + GetItem + KMS Decrypt + RSA load and decrypt "
            f"{floor * 1000:.0f} ms ({best['floor-a'] * 1000:.0f} + {best['floor-b'] * 1000:.0f})",
            ours / floor,
            "<= 1.3x",
        ),
        Result(
            "lambda",
            "SnapStart: after-restore hook (re-seed, clients rebuilt on the kept models) "
            "+ first unwrap",
            f"{best['restored'] * 1000:.0f} ms",
            f"the cold first unwrap above: {ours * 1000:.0f} ms",
            best["restored"] / ours,
            "",
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    return cold_first_unwrap(2 if quick else 5)


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(f"{result.name}: {result.measured} vs {result.baseline} = {result.ratio}")
