"""Bugs 3 and 4 and the export rails: what openssl makes, folders, -o, dry runs, jobs."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import boto3
import pytest

from kmsbridge.export.job import process_export_batch
from tests.cli.helpers import assert_fails, kmsbridge, leftovers
from tests.conftest import REGION, World
from tests.legacy_pki import make_identity, rsa_key, smime_decrypt, smime_encrypt

pytestmark = pytest.mark.server


def register(world: World, cert: Path) -> None:
    """Export goes only to a recipient registered for the org (issue 15)."""
    added = kmsbridge(
        "export", "recipients", "add", world.org, "--cert", cert, table=world.store.table
    )
    assert added.code == 0, added.err


def test_bug3_no_recordings_or_options_after_o(server_world: World, tmp_path: Path) -> None:
    cert, _ = make_identity("customer", rsa_key(30)).write(tmp_path, "customer")
    register(server_world, cert)
    out = tmp_path / "a.zip"
    for argv in (
        ["export", server_world.org, "--to-cert", cert, "-o", out],
        ["export", server_world.org, "-o", out, "--to-cert", cert],
    ):
        refused = kmsbridge("--output", "json", *argv, table=server_world.store.table)
        message = assert_fails(refused, "INVALID_REQUEST", json_output=True)
        assert "at least one recording" in message and "--to-cert" not in message
    (tmp_path / "a.enc").write_bytes(server_world.encrypt(b"call", "a"))
    done = kmsbridge("export", server_world.org, "-o", out, tmp_path / "a.enc",
                     "--to-cert", cert, table=server_world.store.table)  # fmt: skip
    assert done.code == 0, done.err
    again = kmsbridge("export", server_world.org, "--to-cert", cert, "-o", out,
                      tmp_path / "a.enc", table=server_world.store.table)  # fmt: skip
    assert "--force" in assert_fails(again, "INVALID_REQUEST")
    assert leftovers(tmp_path) == []


def test_bug4_3des_der_folders_and_paths(
    server_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = server_world.store.table
    recorder = make_identity("recorder-2016", rsa_key(31))
    cert, key = recorder.write(tmp_path, "recorder")
    imported = kmsbridge("legacy", "import-key", server_world.org, "--cert", cert,
                         "--key", key, table=table)  # fmt: skip
    assert imported.code == 0, imported.err
    calls = {"2019/a/x.wav": os.urandom(5000), "2019/b/x.wav": os.urandom(7000)}
    for name, data in calls.items():
        plain = tmp_path / "plain" / name
        plain.parent.mkdir(parents=True, exist_ok=True)
        plain.write_bytes(data)
        p7m = tmp_path / "p7m" / f"{name}.p7m"
        p7m.parent.mkdir(parents=True, exist_ok=True)
        smime_encrypt(plain, p7m, cert, cipher="-des3")  # OpenSSL 3's default cipher too

    first = tmp_path / "p7m/2019/a/x.wav.p7m"
    one = kmsbridge("--output", "json", "legacy", "decrypt", server_world.org, first,
                    tmp_path / "one.wav", table=table)  # fmt: skip
    assert one.code == 0, one.err
    assert (one.json()["cipher"], one.json()["integrity"]) == ("des-ede3-cbc", False)
    assert (tmp_path / "one.wav").read_bytes() == calls["2019/a/x.wav"]
    text = kmsbridge("legacy", "decrypt", server_world.org, tmp_path / "p7m/2019/b/x.wav.p7m",
                     tmp_path / "two.wav", table=table)  # fmt: skip
    assert "des-ede3-cbc" in text.text and "no integrity" in text.text

    folder = kmsbridge("--output", "json", "legacy", "decrypt", server_world.org,
                       tmp_path / "p7m", tmp_path / "out", table=table)  # fmt: skip
    assert folder.code == 0, folder.err
    assert sorted(f["recording"] for f in folder.json()["files"]) == [f"{n}.p7m" for n in calls]
    for name, data in calls.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    resumed = kmsbridge("--output", "json", "legacy", "decrypt", server_world.org,
                        "--skip-existing", tmp_path / "p7m", tmp_path / "out",
                        table=table)  # fmt: skip
    assert resumed.json()["skipped"] == 2

    customer, customer_key = make_identity("customer", rsa_key(32)).write(tmp_path, "customer")
    register(server_world, customer)
    monkeypatch.chdir(tmp_path / "p7m")  # recordings named by relative paths
    exported = kmsbridge("--output", "json", "export", server_world.org, "--to-cert", customer,
                         "-o", tmp_path / "e.zip", "2019/a/x.wav.p7m", "2019/b/x.wav.p7m",
                         table=table)  # fmt: skip
    assert exported.code == 0, exported.err  # two x.wav.p7m: not "named twice"
    ids = sorted(r["recording"] for r in exported.json()["recordings"])
    assert ids == ["2019/a/x.wav.p7m", "2019/b/x.wav.p7m"]


def test_export_job_rails(server_world: World, tmp_path: Path) -> None:
    table = server_world.store.table
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    bucket = f"rails-{server_world.org}".lower()
    s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=f"rails-{server_world.org}")["QueueUrl"]
    data = {f"in/c{n}.enc": os.urandom(1000 + n) for n in range(3)}
    for key, plain in data.items():
        s3.put_object(Bucket=bucket, Key=key, Body=server_world.encrypt(plain, key))
    cert, cert_key = make_identity("customer", rsa_key(33)).write(tmp_path, "customer")
    register(server_world, cert)
    start = ["export", "start", server_world.org, "--source-bucket", bucket, "--source-prefix",
             "in/", "--dest-bucket", bucket, "--queue-url", queue, "--to-cert", cert,
             "--batch-size", "2"]  # fmt: skip
    planned = kmsbridge("--output", "json", *start, "--dry-run", table=table)
    assert planned.code == 0, planned.err
    assert (planned.json()["recordings"], planned.json()["batches"]) == (3, 2)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    started = kmsbridge("--output", "json", *start, table=table)
    job = started.json()["job"]
    early = kmsbridge("export", "fetch", job, "-o", tmp_path / "job.zip", table=table)
    assert "not finished" in assert_fails(early, "INVALID_REQUEST")
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]:
        process_export_batch(
            json.loads(message["Body"]), clients=server_world.clients,
            decryptor=server_world.decryptor,
        )  # fmt: skip
    waited = kmsbridge("--output", "json", "export", "status", job, "--wait",
                       "--poll-seconds", "0.2", table=table)  # fmt: skip
    assert waited.code == 0 and waited.json()["state"] == "complete"
    fetched = kmsbridge("--output", "json", "export", "fetch", job, "-o", tmp_path / "job.zip",
                        table=table)  # fmt: skip
    assert fetched.code == 0, fetched.err
    with zipfile.ZipFile(tmp_path / "job.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert len(manifest["recordings"]) == 3
        for entry in manifest["recordings"]:
            (tmp_path / "r.p7m").write_bytes(zf.read(entry["file"]))
            smime_decrypt(tmp_path / "r.p7m", tmp_path / "r", cert, cert_key)
            assert (tmp_path / "r").read_bytes() == data[entry["recording"]]
    twice = kmsbridge("export", "fetch", job, "-o", tmp_path / "job.zip", table=table)
    assert "--force" in assert_fails(twice, "INVALID_REQUEST")
    assert leftovers(tmp_path) == []
