"""The laptop loop as a new user runs it: ``kmsbridge dev-server`` in one process, the
printed exports in another, a PGP export job worked off by ``kmsbridge jobs work --once``,
every file decrypted by the real gpg, and the dev server stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.export.gnupg import gnupg_home, needs_gpg

pytestmark = [pytest.mark.server, needs_gpg]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without any AWS or kmsbridge setting of the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMSBRIDGE_"))}


@pytest.fixture
def dev_server() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kmsbridge.cli.main", "dev-server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert server.stdout is not None
    exports: dict[str, str] = {}
    for line in server.stdout:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].strip().partition("=")
            exports[name] = shlex.split(value)[0]
        if line.startswith("unset "):
            break
    try:
        yield server, exports
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def kmsbridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *args],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def test_dev_server_jobs_work_and_a_pgp_export(
    dev_server: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    server, exports = dev_server
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert set(exports) >= {
        "AWS_REGION",
        "KMSBRIDGE_TABLE",
        "KMSBRIDGE_JOBS_QUEUE_URL",
        "KMSBRIDGE_CA_FILE",
    }
    env = clean_env() | exports
    session = boto3.Session(
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        region_name=exports["AWS_REGION"],
    )
    aws = {"endpoint_url": exports["AWS_ENDPOINT_URL"]}
    kms, s3 = session.client("kms", **aws), session.client("s3", **aws)
    customer_key = kms.create_key()["KeyMetadata"]["Arn"]
    signing = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    added = kmsbridge(env, "org", "add", "acme", "--kms-key", customer_key)
    assert added.returncode == 0, added.stderr
    s3.create_bucket(Bucket="recordings")
    plain = {f"call-{n}": os.urandom(50_000 * n + 1) for n in range(3)}
    for rid, data in plain.items():
        (tmp_path / rid).write_bytes(data)
        done = kmsbridge(env, "encrypt", "--org", "acme", "--recording-id", rid,
                         str(tmp_path / rid), str(tmp_path / f"{rid}.enc"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        s3.upload_file(str(tmp_path / f"{rid}.enc"), "recordings", f"in/{rid}.enc")
    assert readme_invoker_plays(env, tmp_path, "call-1") == plain["call-1"]
    with gnupg_home() as gpg:
        recipient = gpg.generate("Customer <customer@example.com>")
        (tmp_path / "customer.asc").write_bytes(gpg.public(recipient))
        added = kmsbridge(
            env, "export", "recipients", "add", "acme", "--pgp", str(tmp_path / "customer.asc")
        )
        assert added.returncode == 0, added.stderr
        started = kmsbridge(
            env, "--output", "json", "export", "start", "acme", "--source-bucket", "recordings",
            "--source-prefix", "in/", "--dest-bucket", "recordings",
            "--to-pgp", str(tmp_path / "customer.asc"), "--sign-key", signing["Arn"],
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        job = json.loads(started.stdout)["job"]
        worked = kmsbridge(env, "jobs", "work", "--once")
        assert worked.returncode == 0, worked.stderr
        assert worked.stdout.strip() == "processed 1 message(s): 1 done, 0 failed"
        status = kmsbridge(env, "--output", "json", "export", "status", job)
        assert json.loads(status.stdout)["state"] == "complete", status.stderr
        prefix = job.split("/", 3)[3]
        manifest = json.loads(
            s3.get_object(Bucket="recordings", Key=prefix + "manifest.json")["Body"].read()
        )
        assert {e["recording"] for e in manifest["recordings"]} == set(plain)
        for entry in manifest["recordings"]:
            s3.download_file("recordings", entry["file"], str(tmp_path / "x.pgp"))
            assert gpg.decrypt(tmp_path / "x.pgp") == plain[entry["recording"]]
        assert "Contents" in s3.list_objects_v2(
            Bucket="recordings", Prefix=prefix + "manifest.json.sig"
        )
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=30) == 0
    assert server.stderr is not None and "stopped" in server.stderr.read()


def readme_invoker_plays(env: dict[str, str], folder: Path, rid: str) -> bytes:
    """Run the README's local-invoker example as a playback service would, in ``folder``."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A laptop loop", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace(
        '"lambda/decryptor/handler.py"', repr(str(ROOT / "lambda/decryptor/handler.py"))
    )
    (folder / "call-1.wav").unlink(missing_ok=True)
    played = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True
    )
    assert played.returncode == 0, played.stderr
    return (folder / "call-1.wav").read_bytes()


def test_jobs_work_needs_a_queue_and_dev_server_a_valid_port(tmp_path: Path) -> None:
    no_queue = kmsbridge(clean_env(), "jobs", "work", "--once")
    assert no_queue.returncode == 2
    assert no_queue.stderr.strip().startswith("error: INVALID_REQUEST: name the queue")
    bad_port = kmsbridge(clean_env(), "dev-server", "--port", "70000")
    assert bad_port.returncode == 2
    assert bad_port.stderr.strip() == "error: INVALID_REQUEST: --port must be 0 to 65535"
