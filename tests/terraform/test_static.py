"""Conventions of the Terraform code, checked without terraform (python-hcl2), and checkov.

Behaviour (rendered policies, settings, validations) is tested by terraform itself: the
``.tftest.hcl`` files (tests/terraform/test_terraform_cli.py) and the policy evaluation
(tests/terraform/test_policies.py). These checks keep the code reviewable: standard
files, typed, described and validated inputs, described outputs, reasons on every
checkov skip, prevent_destroy where a destroy would lose recordings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.hcl import (
    CUSTOMER_KEY,
    PLATFORM,
    ROOT,
    ROOTS,
    TERRAFORM,
    blocks,
    expr,
    only,
    parse,
    resources,
    tf_files,
)

ids = {"ids": lambda p: str(p.relative_to(TERRAFORM))}


@pytest.mark.parametrize("directory", ROOTS, **ids)
def test_module_has_the_standard_files(directory: Path) -> None:
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (directory / name).is_file(), f"{directory.relative_to(ROOT)} lacks {name}"
    assert list((directory / "tests").glob("*.tftest.hcl")), "no terraform test"


@pytest.mark.parametrize("directory", ROOTS, **ids)
def test_versions_pin_what_the_tests_use(directory: Path) -> None:
    terraform = only(parse(directory / "versions.tf")["terraform"])
    assert terraform["required_version"] == ">= 1.11"  # override_during in the tests
    aws = only(terraform["required_providers"])["aws"]
    assert (aws["source"], aws["version"]) == ("hashicorp/aws", ">= 5.100, < 7.0")


def variables() -> list[tuple[Path, str, dict[str, Any]]]:
    return [(p, name, body) for p in tf_files() for name, body in _named(p, "variable")]


def _named(path: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for block in parse(path).get(kind, []) for k, v in block.items()]


def test_every_variable_is_typed_and_described() -> None:
    found = variables()
    assert len(found) > 70
    for path, name, body in found:
        where = f"{path.relative_to(ROOT)}: variable {name}"
        assert "type" in body, f"{where} has no type"
        assert str(body.get("description", "")).strip(), f"{where} has no description"


# Names of inputs that have a format or a range: each must carry a validation block.
VALIDATED_NAME = re.compile(
    r"(_arns?|org_ids|^orgs|kek_ids|_id|_days|_seconds|_timeout|_size|_concurrency|_count"
    r"|_prefix|_name|_path|_mode|_expression|_timezone|region|architecture|log_level"
    r"|_runtime|_cidrs|_documents)$"
)


def test_variables_with_a_format_or_range_are_validated() -> None:
    checked = 0
    for path, name, body in variables():
        if VALIDATED_NAME.search(name) and expr(body["type"]) != "bool":
            checked += 1
            where = f"{path.relative_to(ROOT)}: variable {name}"
            assert body.get("validation"), f"{where} has no validation block"
            for validation in body["validation"]:
                assert validation.get("condition") and validation.get("error_message"), where
    assert checked > 50


def test_every_output_is_described() -> None:
    outputs = [(p, n, b) for p in tf_files() for n, b in _named(p, "output")]
    assert len(outputs) > 30
    for path, name, body in outputs:
        assert str(body.get("description", "")).strip(), f"{path}: output {name}"


@pytest.mark.parametrize("directory", ROOTS, **ids)
def test_readme_shows_init_plan_apply(directory: Path) -> None:
    readme = (directory / "README.md").read_text()
    for step in ("terraform init", "terraform plan", "terraform apply"):
        assert step in readme, f"{directory.relative_to(ROOT)}/README.md does not show `{step}`"


@pytest.mark.parametrize(
    ("directory", "section"),
    [
        (PLATFORM, "Reserved concurrency"),
        (PLATFORM, "Limits"),
        (PLATFORM, "Alarms"),
        (PLATFORM, "Teardown"),
        (CUSTOMER_KEY, "Teardown"),
    ],
)
def test_readme_sections(directory: Path, section: str) -> None:
    readme = (directory / "README.md").read_text()
    assert re.search(rf"^## {section}$", readme, re.MULTILINE), section


def test_no_todo_or_commented_out_code() -> None:
    for path in [*tf_files(), *TERRAFORM.rglob("README.md"), *TERRAFORM.rglob("*.tftest.hcl")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            assert not re.search(r"\b(TODO|XXX|FIXME)\b", line), where
            if path.suffix in (".tf", ".hcl"):
                code = re.match(
                    r"\s*(#|//)\s*((resource|data|module|variable|output|run)\s+\"|locals\s*\{)",
                    line,
                )
                assignment = re.match(r"\s*(#|//)\s*[a-z_]+\s*=\s*\S", line)
                assert not (code or assignment), f"{where}: commented-out code"


def test_checkov_skips_carry_a_reason() -> None:
    skips = 0
    for path in tf_files():
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                skips += 1
                match = re.fullmatch(r"\s*#checkov:skip=(CKV2?_AWS_\d+):(.+)", line)
                assert match, f"{path.relative_to(ROOT)}: malformed skip: {line.strip()}"
                assert len(match.group(2).split()) >= 6, f"reason too short: {line.strip()}"
    assert skips > 0


@pytest.mark.parametrize(
    ("directory", "resource_type", "name"),
    [
        (CUSTOMER_KEY, "aws_kms_key", "this"),
        (PLATFORM, "aws_dynamodb_table", "keks"),
        (PLATFORM, "aws_kms_key", "platform_ca"),
    ],
)
def test_what_holds_recordings_keys_cannot_be_destroyed_by_a_plan(
    directory: Path, resource_type: str, name: str
) -> None:
    lifecycle = only(resources(directory, resource_type)[name]["lifecycle"])
    assert lifecycle["prevent_destroy"] is True


def test_multi_region_is_documented_as_immutable() -> None:
    variable = dict(blocks(CUSTOMER_KEY, "variable"))["multi_region"]
    assert "Immutable" in variable["description"]


def test_role_permissions_come_only_from_policy_documents() -> None:
    for resource_type in ("aws_iam_role_policy_attachment", "aws_iam_policy"):
        assert not resources(PLATFORM, resource_type), f"{resource_type} bypasses the checks"
    for name, role in resources(PLATFORM, "aws_iam_role").items():
        assert "managed_policy_arns" not in role and "inline_policy" not in role, name
    policy = resources(PLATFORM, "aws_iam_role_policy")
    assert list(policy) == ["this"] and expr(policy["this"]["for_each"]) == "local.role_policies"


# --------------------------------------------------------------------------------------
# checkov
# --------------------------------------------------------------------------------------


def checkov_executable() -> Path:
    configured = os.environ.get("KMSBRIDGE_CHECKOV")
    path = Path(configured) if configured else ROOT / ".venv-checkov" / "bin" / "checkov"
    if not path.is_file():
        pytest.fail(
            f"checkov not found at {path}: run `make .venv-checkov/bin/checkov` "
            "or set KMSBRIDGE_CHECKOV to a checkov executable"
        )
    return path


def test_checkov_reports_no_failed_check() -> None:
    command = [
        str(checkov_executable()),
        "--directory", "terraform",
        "--framework", "terraform",
        "--skip-download",
        "--quiet",
        "--compact",
        "-o", "json",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON (exit {result.returncode}):\n{result.stderr[-4000:]}")
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    summary = [r["summary"] for r in reports]
    listing = "\n".join(
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in failed
    )
    assert not failed, f"checkov failed checks:\n{listing}"
    assert all(s["failed"] == 0 and s["parsing_errors"] == 0 for s in summary), summary
    assert sum(s["passed"] for s in summary) > 100, summary
    assert result.returncode == 0, result.stderr[-4000:]
