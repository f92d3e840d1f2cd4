"""terraform init, validate, fmt -check and test in each module and the example.

The ``.tftest.hcl`` files hold the behaviour (plan-only runs with fake credentials):
rendered policies, settings, validations. This file runs them with the real terraform
and the provider mirror (tests/terraform/tf.py), one initialised copy per directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terraform import tf


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tf.require_terraform()
    root = tmp_path_factory.mktemp("terraform")
    env = tf.environment(root)
    tf.copy_tree(root)
    for directory in tf.DIRECTORIES:
        tf.init(root / "terraform" / directory, env)
    return root / "terraform", env


@pytest.mark.parametrize("directory", tf.DIRECTORIES)
def test_validate(workspace: tuple[Path, dict[str, str]], directory: str) -> None:
    root, env = workspace
    result = tf.run(["validate"], root / directory, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success! The configuration is valid." in result.stdout
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("directory", tf.DIRECTORIES)
def test_fmt(workspace: tuple[Path, dict[str, str]], directory: str) -> None:
    root, env = workspace
    result = tf.run(["fmt", "-check", "-recursive", "-diff"], root / directory, env)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


# The least number of runs each directory's tests must pass: a deleted run fails here.
MIN_RUNS = {"modules/customer-key": 9, "modules/platform": 21, "examples/complete": 1}


@pytest.mark.parametrize("directory", tf.DIRECTORIES)
def test_terraform_test(
    workspace: tuple[Path, dict[str, str]], directory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, env = workspace
    result = tf.run(["test"], root / directory, env)
    summary = tf.SUMMARY.search(result.stdout)
    assert summary, result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0 and summary.group(1) == "Success", result.stdout[-6000:]
    assert int(summary.group(3)) == 0 and int(summary.group(2)) >= MIN_RUNS[directory]
    assert not summary.group(4), f"skipped runs: {summary.group(0)}"
    with capsys.disabled():
        print(f"\n{directory}: {summary.group(0)}")


def test_the_mirror_is_found_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, mirror = tf.require_terraform()
    monkeypatch.setenv(tf.PLUGIN_DIR_ENV, str(mirror))
    assert tf.plugin_dir() == mirror
    monkeypatch.setenv(tf.PLUGIN_DIR_ENV, str(tmp_path))
    assert tf.plugin_dir() is None
