"""Peak memory of one decryption of a crafted recording, run as a subprocess by
tests/harden/test_oversized_frames.py.

``python -m tests.harden.oversized_probe DIR FRAME_LENGTH PATH`` builds an org on
in-process moto, writes a recording made from its public key alone with that frame length
in its header (about 650 bytes in all), warms PATH up on an ordinary recording, runs it
once on the crafted one and prints one JSON line (last): the outcome ("ok" or the error
code) and how much that run raised the process's peak RSS (``ru_maxrss``, KiB). PATH is
``decrypt_file``, ``decrypt_range`` (bytes 0-1 of the file) or ``lambda_decrypt`` (the
Lambda ``decrypt`` op: S3 to a playback copy). One path per process: a peak hides any
smaller one after it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto import mock_aws

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import (
    FINAL_FRAME_OVERHEAD,
    EncryptedDataKey,
    FrameCipher,
    derive_message_keys,
    header_auth_tag,
    serialize_header_body,
)
from kmsbridge.errors import KmsBridgeError, error_from_code
from kmsbridge.formats import PROVIDER_ID, recording_context
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.recordings.codec import decrypt_file
from kmsbridge.recordings.ranges import decrypt_range
from kmsbridge.services import Services, Settings
from tests.conftest import REGION, Clock, make_world


def crafted(public_key: KekPublicKey, org: str, frame_length: int, content: bytes) -> bytes:
    """A well-formed recording with any frame length: what anyone with the public key makes."""
    dek, message_id = os.urandom(32), os.urandom(32)
    keys, commitment = derive_message_keys(dek, message_id)
    edk = EncryptedDataKey(PROVIDER_ID, public_key.kek_id.encode(), public_key.wrap_dek(dek))
    context = recording_context(org, "crafted")
    body = serialize_header_body(message_id, context, (edk,), frame_length, commitment)
    final = bytearray(FINAL_FRAME_OVERHEAD + len(content))
    FrameCipher(keys, message_id).seal_final_into(1, memoryview(content), memoryview(final))
    return body + header_auth_tag(keys, body) + bytes(final)


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def outcome(run: Callable[[], Any]) -> str:
    try:
        run()
    except KmsBridgeError as exc:
        return exc.code
    return "ok"


def main(directory: Path, frame_length: int, path: str) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION=REGION)
    with mock_aws():
        clients = AwsClients(AwsSettings(region=REGION))
        world = make_world(clients, Clock())
        s3 = clients.client("s3")
        for bucket in ("recordings", "playback"):
            s3.create_bucket(Bucket=bucket)
        app = LambdaApp(
            Services(
                Settings(playback_bucket="playback"), clients=clients, decryptor=world.decryptor
            )
        )
        paths = {
            "decrypt_file": lambda name: decrypt_file(
                directory / name, directory / "out", org=world.org, data_keys=world.decryptor
            ),
            "decrypt_range": lambda name: decrypt_range(
                directory / name, 0, 1, org=world.org, data_keys=world.decryptor
            ),
            "lambda_decrypt": lambda name: lambda_decrypt(app, s3, world.org, directory / name),
        }
        ordinary = crafted(world.public_key, world.org, 64 * 1024, b"a" * 10)
        attack = crafted(world.public_key, world.org, frame_length, b"b" * 10)
        (directory / "ordinary.rec").write_bytes(ordinary)
        (directory / "attack.rec").write_bytes(attack)
        run = paths[path]
        assert outcome(lambda: run("ordinary.rec")) == "ok"  # warm up: imports, clients, caches
        before = peak_kib()
        code = outcome(lambda: run("attack.rec"))
        results = {"bytes": len(attack), "outcome": code, "peak_growth_kib": peak_kib() - before}
    print(json.dumps(results))


def lambda_decrypt(app: LambdaApp, s3: Any, org: str, path: Path) -> None:
    s3.put_object(Bucket="recordings", Key=path.name, Body=path.read_bytes())
    answer = app.handle({"op": "decrypt", "org": org, "source": f"s3://recordings/{path.name}"})
    if not answer["ok"]:
        raise error_from_code(answer["error"]["code"], answer["error"]["message"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
