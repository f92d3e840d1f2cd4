"""``kmsbridge export`` through a subprocess against moto's server: archive, job, status."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from kmsbridge.cli import exit_codes
from kmsbridge.export.job import process_export_batch
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import DAY, cli, make_identity, one_error_line, rsa_key, smime_decrypt

pytestmark = pytest.mark.server


def test_export_archive_for_a_certificate(server_world: World, tmp_path: Path) -> None:
    cert, key = make_identity("customer", rsa_key(10)).write(tmp_path, "customer")
    data = {f"call-{n}": os.urandom(9000 * n) for n in (1, 2)}
    for rid, plain in data.items():
        (tmp_path / f"{rid}.enc").write_bytes(server_world.encrypt(plain, rid))
    unregistered = cli(
        "export", server_world.org, "--to-cert", str(cert), "-o", str(tmp_path / "out.zip"),
        str(tmp_path / "call-1.enc"), table=server_world.store.table,
    )  # fmt: skip
    assert "not a registered export recipient" in one_error_line(unregistered, "INVALID_REQUEST")
    assert not (tmp_path / "out.zip").exists()
    added = cli("export", "recipients", "add", server_world.org, "--cert", str(cert),
                table=server_world.store.table)  # fmt: skip
    assert added.returncode == 0, added.stderr
    result = cli(
        "export", server_world.org, "--to-cert", str(cert), "-o", str(tmp_path / "out.zip"),
        str(tmp_path / "call-1.enc"), str(tmp_path / "call-2.enc"),
        table=server_world.store.table,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "exported 2 recording(s)" in result.stdout
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        for entry in manifest["recordings"]:
            (tmp_path / "x.p7m").write_bytes(zf.read(entry["file"]))
            smime_decrypt(tmp_path / "x.p7m", tmp_path / "x", cert, key)
            assert (tmp_path / "x").read_bytes() == data[entry["recording"]]


def test_export_refusals(server_world: World, tmp_path: Path) -> None:
    table = server_world.store.table
    (tmp_path / "a.enc").write_bytes(server_world.encrypt(b"a", "a"))
    future = make_identity("later", rsa_key(11), not_before=FIXED_NOW + 3650 * DAY)
    cert, _ = future.write(tmp_path, "later")
    refused = cli("export", server_world.org, "--to-cert", str(cert), "-o",
                  str(tmp_path / "o.zip"), str(tmp_path / "a.enc"), table=table)  # fmt: skip
    assert refused.returncode == exit_codes.USAGE
    assert "not valid before" in one_error_line(refused, "INVALID_REQUEST")
    no_target = cli("export", server_world.org, "-o", str(tmp_path / "o.zip"),
                    str(tmp_path / "a.enc"), table=table)  # fmt: skip
    assert "--to-cert" in one_error_line(no_target, "INVALID_REQUEST")
    missing = cli("export", "status", "s3://nowhere-bucket/exports/nope", table=table)
    assert missing.returncode == exit_codes.NOT_FOUND
    one_error_line(missing, "NOT_FOUND")
    assert not (tmp_path / "o.zip").exists()


def test_export_job_start_and_status(server_world: World, tmp_path: Path) -> None:
    s3 = server_world.clients.client("s3")
    sqs = server_world.clients.client("sqs")
    bucket = f"rec-{server_world.org}".lower()
    s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=f"jobs-{server_world.org}")["QueueUrl"]
    for n in range(3):
        s3.put_object(
            Bucket=bucket, Key=f"in/c{n}.enc", Body=server_world.encrypt(b"x" * n, f"c{n}")
        )
    customer_key = server_world.kms_client.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    table = server_world.store.table
    added = cli("export", "recipients", "add", server_world.org, "--kms-key", customer_key,
                table=table)  # fmt: skip
    assert added.returncode == 0, added.stderr
    started = cli(
        "--output", "json", "export", "start", server_world.org, "--source-bucket", bucket,
        "--source-prefix", "in/", "--dest-bucket", bucket, "--queue-url", queue,
        "--to-kms-key", customer_key, "--batch-size", "2", table=table,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)["job"]
    status = cli("export", "status", job, table=table)
    assert "running, 0/2 batches" in status.stdout
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    for message in messages:  # what the jobs Lambda does with each SQS record
        process_export_batch(
            json.loads(message["Body"]),
            clients=server_world.clients,
            decryptor=server_world.decryptor,
        )
    status = cli("--output", "json", "export", "status", job, table=table)
    assert status.returncode == 0, status.stderr
    got = json.loads(status.stdout)
    assert (got["state"], got["exported"], got["failed"]) == ("complete", 3, 0)
