"""Running the real terraform on a copy of the modules, offline.

The hashicorp/aws provider comes from a filesystem mirror (a directory holding
``registry.terraform.io/hashicorp/aws/<version>/<os_arch>``): KMSBRIDGE_TF_PLUGIN_DIR
names it, else the usual places are searched. Without terraform or a mirror the tests
skip with one line saying which is missing. Every run works in a temporary copy, so no
``.terraform`` directory or lock file lands in the tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
DIRECTORIES = ["modules/customer-key", "modules/platform", "examples/complete"]
PLUGIN_DIR_ENV = "KMSBRIDGE_TF_PLUGIN_DIR"
PLUGIN_DIR_CANDIDATES = [
    Path("/opt/tf-plugins"),
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
]
SUMMARY = re.compile(r"^(Success|Failure)! (\d+) passed, (\d+) failed(?:, (\d+) skipped)?\.", re.M)


def plugin_dir() -> Path | None:
    configured = os.environ.get(PLUGIN_DIR_ENV)
    candidates = [Path(configured)] if configured else PLUGIN_DIR_CANDIDATES
    for candidate in candidates:
        if any((candidate / "registry.terraform.io" / "hashicorp" / "aws").glob("*/*_*")):
            return candidate
    return None


def require_terraform() -> tuple[str, Path]:
    """The terraform binary and the provider mirror, or skip in one line."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed on this machine")
    mirror = plugin_dir()
    if mirror is None:
        pytest.skip(f"no hashicorp/aws provider mirror (set {PLUGIN_DIR_ENV})")
    return binary, mirror


def environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """No CLI config, no checkpoint call, no instance metadata, no real AWS profile."""
    config = home / "terraformrc"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env |= {
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env | (extra or {})


def copy_tree(destination: Path) -> Path:
    """terraform/ (and the policy fixture beside it) copied without local state."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "*.tfplan")
    shutil.copytree(TERRAFORM, destination / "terraform", ignore=ignore)
    shutil.copytree(Path(__file__).parent / "policy_fixture", destination / "policy_fixture")
    return destination


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    binary, _ = require_terraform()
    return subprocess.run(
        [binary, *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def init(directory: Path, env: dict[str, str]) -> None:
    _, mirror = require_terraform()
    result = run(
        ["init", "-backend=false", f"-plugin-dir={mirror}", "-input=false"], directory, env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
