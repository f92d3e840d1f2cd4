"""The command line as a user runs it: ``kmsbridge`` in a subprocess against moto's server.

The ``moto_server`` fixture puts AWS_ENDPOINT_URL and dummy credentials in os.environ, which
every subprocess inherits; each test uses its own table. Independent invocations run
concurrently to keep the file fast (each process pays ~0.4 s of imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import COMMAND_MODULES, build_parser, main
from tests.conftest import REGION

pytestmark = pytest.mark.server


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def kmsbridge(*argv: str | Path, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def many(*calls: tuple[str | Path, ...]) -> list[Run]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: kmsbridge(*argv), calls))


def assert_fails(run: Run, code: str) -> None:
    """One line on stderr, ``error: CODE: sentence``, the named exit status, no traceback."""
    assert run.code == exit_codes.BY_ERROR_CODE[code], run
    assert run.err.startswith(f"error: {code}: ") and run.err.count("\n") == 1, run.err
    assert "Traceback" not in run.err


@dataclass
class Org:
    table: str
    name: str
    arn: str
    kek: str

    @property
    def key_id(self) -> str:
        return self.arn.rsplit("/", 1)[1]


@pytest.fixture
def org(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Org]:
    """A fresh table and an org with one KMS key, made through the CLI itself."""
    table = f"cli-{os.urandom(4).hex()}"
    monkeypatch.setenv("KMSBRIDGE_TABLE", table)
    arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    created = kmsbridge("table", "create", "--output", "json")
    assert created.code == 0 and created.json() == {"table": table, "created": True}
    kms = boto3.client("kms", region_name=REGION)
    ca_key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    assert kmsbridge("ca", "create", "--kms-key", ca_key).code == 0
    shown = kmsbridge("ca", "show")
    assert shown.code == 0 and shown.out.startswith("-----BEGIN CERTIFICATE-----")
    (tmp_path / "platform-ca.pem").write_text(shown.out)
    monkeypatch.setenv("KMSBRIDGE_CA_FILE", str(tmp_path / "platform-ca.pem"))
    added = kmsbridge("--output", "json", "org", "add", "acme", "--kms-key", arn)
    assert added.code == 0, added.err
    body = added.json()
    assert isinstance(body, dict) and body["kms_keys"] == [arn]
    yield Org(table, "acme", arn, body["active_kek"])


def test_encrypt_decrypt_a_file_and_the_main_failures(org: Org, tmp_path: Path) -> None:
    call = os.urandom(100_000)
    (tmp_path / "call.wav").write_bytes(call)
    enc = kmsbridge(
        "encrypt", "--org", "acme", "--recording-id", "c1", tmp_path / "call.wav", tmp_path / "c1"
    )
    assert enc.code == 0 and org.kek in enc.out and enc.err == ""
    dec = kmsbridge(
        "decrypt", "--org", "acme", tmp_path / "c1", tmp_path / "out.wav", "--output", "json"
    )
    assert dec.code == 0 and dec.json() == {
        "org": "acme",
        "recording": "c1",
        "kek": org.kek,
        "bytes": len(call),
        "output": str(tmp_path / "out.wav"),
    }
    assert (tmp_path / "out.wav").read_bytes() == call

    tampered = bytearray((tmp_path / "c1").read_bytes())
    tampered[-100] ^= 1
    (tmp_path / "bad").write_bytes(tampered)
    runs = many(
        ("decrypt", "--org", "globex", tmp_path / "c1", tmp_path / "x1"),
        ("decrypt", "--org", "acme", tmp_path / "nothing", tmp_path / "x2"),
        ("decrypt", "--org", "acme", tmp_path / "bad", tmp_path / "x3"),
        ("decrypt", "--org", "acme", tmp_path / "call.wav", tmp_path / "x4"),
        ("encrypt", "--org", "acme", tmp_path / "call.wav", tmp_path / "x5"),
        (
            "encrypt",
            "--org",
            "no body",
            "--recording-id",
            "r",
            tmp_path / "call.wav",
            tmp_path / "x6",
        ),
        (
            "encrypt",
            "--org",
            "nobody",
            "--recording-id",
            "r",
            tmp_path / "call.wav",
            tmp_path / "x7",
        ),
        ("org", "add", "acme", "--kms-key", org.arn),
        ("org", "add", "beta", "--kms-key", "not-an-arn"),
        ("keys", "public", "nobody", "-o", tmp_path / "x8"),
    )
    for run, code in zip(
        runs,
        [
            "WRONG_ORG",
            "NOT_FOUND",
            "INTEGRITY",
            "INTEGRITY",
            "INVALID_REQUEST",
            "INVALID_REQUEST",
            "NOT_FOUND",
            "INVALID_REQUEST",
            "INVALID_REQUEST",
            "NOT_FOUND",
        ],
        strict=True,
    ):
        assert_fails(run, code)
    assert "already exists" in runs[7].err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad",
        "c1",
        "call.wav",
        "out.wav",
        "platform-ca.pem",
    ]


def test_revoked_key_then_restored(org: Org, tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"hello" * 1000)
    assert (
        kmsbridge(
            "encrypt", "--org", "acme", "--recording-id", "r", tmp_path / "in", tmp_path / "enc"
        ).code
        == 0
    )
    kms = boto3.client("kms", region_name=REGION)
    kms.disable_key(KeyId=org.key_id)
    revoked = kmsbridge("decrypt", "--org", "acme", tmp_path / "enc", tmp_path / "out")
    assert_fails(revoked, "ACCESS_REVOKED")
    assert not (tmp_path / "out").exists()
    kms.enable_key(KeyId=org.key_id)
    assert kmsbridge("decrypt", "--org", "acme", tmp_path / "enc", tmp_path / "out").code == 0
    assert (tmp_path / "out").read_bytes() == b"hello" * 1000


def test_bundle_encrypts_with_no_aws_at_all(org: Org, tmp_path: Path) -> None:
    made = kmsbridge("keys", "public", "acme", "-o", tmp_path / "bundle.json", "--output", "json")
    assert made.code == 0 and made.json()["kek"] == org.kek  # type: ignore[index]
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", os.environ["KMSBRIDGE_CA_FILE"], "-untrusted",
         tmp_path / "bundle.json", tmp_path / "bundle.json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    (tmp_path / "in").write_bytes(b"offline")
    no_aws = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    no_aws["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    enc = kmsbridge(
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "r",
        "--public-keys",
        tmp_path / "bundle.json",
        tmp_path / "in",
        tmp_path / "enc",
        env=no_aws,
    )
    assert (enc.code, enc.err) == (0, "") and org.kek in enc.out
    dec = kmsbridge("decrypt", "--org", "acme", tmp_path / "enc", tmp_path / "out")
    assert dec.code == 0 and (tmp_path / "out").read_bytes() == b"offline"
    other = kmsbridge(
        "encrypt",
        "--org",
        "globex",
        "--recording-id",
        "r",
        "--public-keys",
        tmp_path / "bundle.json",
        tmp_path / "in",
        tmp_path / "x",
        env=no_aws,
    )
    assert_fails(other, "INTEGRITY")
    assert not (tmp_path / "x").exists()


def test_folders_each_file_with_its_own_result(org: Org, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    (calls / "2026" / "11").mkdir(parents=True)
    (calls / "a.wav").write_bytes(b"a" * 5000)
    (calls / "2026" / "11" / "b.wav").write_bytes(b"b" * 70_000)
    (calls / ".half-written.part").write_bytes(b"skipped")
    enc = kmsbridge("--output", "json", "encrypt", "--org", "acme", calls, tmp_path / "enc")
    assert enc.code == 0 and enc.err == ""  # no progress bar in a pipe
    report = enc.json()
    assert isinstance(report, dict) and (report["ok"], report["failed"]) == (2, 0)
    assert [f["recording"] for f in report["files"]] == ["2026/11/b.wav", "a.wav"]
    assert (tmp_path / "enc" / "2026" / "11" / "b.wav.enc").is_file()

    prefixed = kmsbridge(
        "encrypt",
        "--org",
        "acme",
        "--recording-id",
        "tenant-7",
        calls,
        tmp_path / "enc2",
        "--output",
        "json",
    )
    assert [f["recording"] for f in prefixed.json()["files"]] == [  # type: ignore[index]
        "tenant-7/2026/11/b.wav",
        "tenant-7/a.wav",
    ]

    (tmp_path / "enc" / "junk.enc").write_bytes(b"not a recording")
    dec = kmsbridge("decrypt", "--org", "acme", tmp_path / "enc", tmp_path / "plain")
    assert_fails(dec, "INTEGRITY")
    assert "1 of 3 files failed" in dec.err and "junk.enc" in dec.err
    assert dec.out.count("ok      ") == 2 and "FAILED  " in dec.out
    assert (tmp_path / "plain" / "2026" / "11" / "b.wav").read_bytes() == b"b" * 70_000
    assert (tmp_path / "plain" / "a.wav").read_bytes() == b"a" * 5000
    assert not (tmp_path / "plain" / "junk").exists()
    assert_fails(kmsbridge("encrypt", "--org", "acme", calls, calls / "inside"), "INVALID_REQUEST")


def test_usage_errors_global_options_and_unreachable_aws(moto_server: str, tmp_path: Path) -> None:
    runs = many(
        (),
        ("frobnicate",),
        ("org",),
        ("org", "add", "acme"),
        ("--output", "yaml", "table", "create"),
        ("demo", "--max-age", "31"),
        ("--endpoint-url", "http://127.0.0.1:9", "keys", "public", "acme", "-o", tmp_path / "b"),
        ("table", "create", "--table", f"cli-late-{os.urandom(3).hex()}", "--output", "json"),
        ("--debug", "decrypt", "--org", "acme", tmp_path / "missing", tmp_path / "out"),
    )
    for run in runs[:5]:
        assert_fails(run, "INVALID_REQUEST")
        assert "--help')" in run.err
    assert_fails(runs[5], "INVALID_REQUEST")
    assert "max age must be 0 to 30 seconds" in runs[5].err
    assert_fails(runs[6], "UNAVAILABLE")  # the key table is down: retry later, exit 7
    assert "unreachable" in runs[6].err and "retry later" in runs[6].err
    assert runs[7].code == 0 and runs[7].json()["created"] is True  # type: ignore[index]
    debug = runs[8]  # --debug: the traceback, then the same one line last
    assert debug.code == exit_codes.NOT_FOUND and "Traceback" in debug.err
    assert debug.err.splitlines()[-1].startswith("error: NOT_FOUND: ")


def test_help_on_every_level(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command and group answers --help (in process: argparse exits 0)."""
    paths: list[list[str]] = [[], *_command_paths(build_parser())]
    assert ["demo"] in paths and ["table", "create"] in paths and ["encrypt"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {' '.join(['kmsbridge', *path])}")
        assert "--output {text,json}" in out  # the global options, at every level
    assert "demo" in COMMAND_MODULES


def _command_paths(parser: object, prefix: tuple[str, ...] = ()) -> Iterator[list[str]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from _command_paths(sub, (*prefix, name))
