"""Bug 9 (ranges clamp like HTTP), bug 11 (demo without a cache), the config file, completion
and the --help examples."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.cli.conftest import CliOrg
from tests.cli.helpers import assert_fails, kmsbridge, leftovers
from tests.conftest import REGION, World

pytestmark = pytest.mark.server


def test_bug9_ranges_clamp_and_open_ends(server_world: World, tmp_path: Path) -> None:
    call = os.urandom(100_000)
    (tmp_path / "c.enc").write_bytes(server_world.encrypt(call, "c"))
    table = server_world.store.table
    argv = ["decrypt", "--org", server_world.org, "--range"]
    clamped = kmsbridge("--output", "json", *argv, "99000-200000", tmp_path / "c.enc",
                        tmp_path / "tail", table=table)  # fmt: skip
    assert clamped.code == 0, clamped.err
    assert clamped.json() | {"output": None} == {
        "org": server_world.org, "recording": "c", "kek": server_world.kek_id, "start": 99000,
        "end": 100_000, "bytes": 1000, "total": 100_000, "output": None,
    }  # fmt: skip
    assert (tmp_path / "tail").read_bytes() == call[99000:]
    open_end = kmsbridge(*argv, "99990-", tmp_path / "c.enc", "-", table=table)
    assert open_end.out == call[99990:] and "of 100000 bytes" in open_end.err
    past = kmsbridge(*argv, "100001-", tmp_path / "c.enc", tmp_path / "x", table=table)
    assert "(100000 bytes)" in assert_fails(past, "INVALID_REQUEST")
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


def test_config_file_flags_over_env_over_file(cli_org: CliOrg, tmp_path: Path) -> None:
    home = Path(os.environ["XDG_CONFIG_HOME"]) / "kmsbridge"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(f'table = "{cli_org.table}"\nregion = "{REGION}"\n')
    from_file = kmsbridge("--output", "json", "org", "list", env={"KMSBRIDGE_TABLE": None})
    assert from_file.code == 0 and from_file.json()["orgs"][0]["org"] == "acme"
    env_wins = kmsbridge("org", "list", env={"KMSBRIDGE_TABLE": "no-such-table"})
    assert "table no-such-table" in assert_fails(env_wins, "INVALID_REQUEST")  # a config error
    flag_wins = kmsbridge("--table", cli_org.table, "org", "list",
                          env={"KMSBRIDGE_TABLE": "no-such-table"})  # fmt: skip
    assert flag_wins.code == 0
    (home / "config.toml").write_text('tabel = "typo"\n')
    typo = kmsbridge("--output", "json", "org", "list")
    assert "unknown settings (tabel)" in assert_fails(typo, "INVALID_REQUEST", json_output=True)
    named = kmsbridge("--config", tmp_path / "missing.toml", "org", "list")
    assert "does not exist" in assert_fails(named, "INVALID_REQUEST")


def test_config_file_role_arn_is_assumed(cli_org: CliOrg, tmp_path: Path) -> None:
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=f"op-{cli_org.table}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    config = tmp_path / "ops.toml"
    config.write_text(f'role_arn = "{role}"\ntable = "{cli_org.table}"\n')
    assert kmsbridge("--config", config, "kek", "rotate", "acme").code == 0
    assert kmsbridge("--config", config, "kek", "retire", "acme", cli_org.kek).code == 0
    done = kmsbridge("--config", config, "--output", "json", "kek", "destroy", "acme",
                     cli_org.kek, "--confirm", cli_org.kek)  # fmt: skip
    assert done.code == 0, done.err
    assert f"assumed-role/op-{cli_org.table}/kmsbridge" in done.json()["destroyed_by"]


def test_completion_script_and_examples(tmp_path: Path) -> None:
    script = kmsbridge("completion", "bash")
    assert script.code == 0 and "kmsbridge" in script.text
    (tmp_path / "kmsbridge.bash").write_bytes(script.out)
    loaded = subprocess.run(
        ["bash", "-c", f"source {tmp_path / 'kmsbridge.bash'} && complete -p kmsbridge"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0 and "kmsbridge" in loaded.stdout, loaded.stderr
    for words in ("encrypt", "decrypt", "kek rotate", "export"):
        help_text = kmsbridge(*words.split(), "--help").text
        assert "examples:\n  kmsbridge " in help_text, words


def test_bug11_demo_without_a_cache_says_so() -> None:
    demo = kmsbridge("--output", "json", "demo", "--max-age", "0", timeout=300)
    assert demo.code == 0, demo.err
    rows = {row["step"]: row["result"] for row in json.loads(demo.out)["steps"]}
    assert "play call-1 again (cached)" not in rows
    assert "play call-1 again (no cache: KMS unwraps again)" in rows
    assert all("…" not in result for result in rows.values())  # full ids in JSON
