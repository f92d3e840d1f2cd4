"""Static checks of the Terraform modules (issue 7) and of the revoked-KEK deny (issue 11).

There is no terraform binary on these machines: every ``.tf`` file under ``terraform/`` is
parsed with python-hcl2 and its policies and settings are checked on the parsed tree.
checkov then scans the whole tree offline and must report no failed check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = ROOT / "terraform"
CUSTOMER_KEY = TERRAFORM / "modules" / "customer-key"
PLATFORM = TERRAFORM / "modules" / "platform"
EXAMPLE = TERRAFORM / "examples" / "complete"
MODULES = [CUSTOMER_KEY, PLATFORM]
ROOTS = [*MODULES, EXAMPLE]
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))

ORG_CONTEXT = "kms:EncryptionContext:kmsbridge:org"
KEK_CONTEXT = "kms:EncryptionContext:kmsbridge:kek"
PURPOSE_CONTEXT = "kms:EncryptionContext:kmsbridge:purpose"
REVOKED_SID = "DenyDecryptRevokedKekPeriods"

# Variables that reference a platform role in the customer's key policy.
PLATFORM_ROLE_VARS = {
    "var.decryptor_role_arn",
    "var.rotation_role_arn",
    "var.jobs_role_arn",
    "var.provisioning_role_arns",
}

# The KMS actions each platform role needs, and no more (key policy sid -> actions).
KEY_POLICY_ACTIONS = {
    "PlatformDecryptorDecrypt": {"kms:Decrypt"},
    "PlatformRotationWrapKeks": {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"},
    "PlatformJobsRewrapExport": {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"},
    "PlatformProvisioningWrapKeks": {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"},
}

# The same in the platform's own role policies (policy document -> actions).
ROLE_KMS_ACTIONS = {
    "decryptor": {"kms:Decrypt"},
    "rotation": {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"},
    "jobs": {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"},
    "scheduler": set(),
    "provisioning": {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"},
}

TABLE_READ = {"dynamodb:GetItem", "dynamodb:Query"}
TABLE_WRITE = TABLE_READ | {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
}

# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
CLOUDWATCH_RETENTION_DAYS = {
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
    731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
}  # fmt: skip


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(
            f,
            serialization_options=SerializationOptions(
                strip_string_quotes=True, explicit_blocks=False
            ),
        )


def expr(value: Any) -> Any:
    """The expression inside a whole-string interpolation: "${var.x}" -> "var.x"."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    if isinstance(value, list):
        return [expr(item) for item in value]
    return value


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def labelled(directory: Path, kind: str) -> dict[str, dict[str, dict[str, Any]]]:
    """resource/data blocks of a directory: {type: {name: body}}."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for block_type, named in block.items():
                for name, body in named.items():
                    found.setdefault(block_type, {})[name] = body
    return found


def named(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """variable/output blocks of a directory: {name: body}."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            found.update(block)
    return found


def locals_of(directory: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get("locals", []):
            found.update({k: v for k, v in block.items() if k != "__comments__"})
    return found


def resources(directory: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    return labelled(directory, "resource").get(resource_type, {})


def policy_documents(directory: Path) -> dict[str, dict[str, Any]]:
    return labelled(directory, "data").get("aws_iam_policy_document", {})


def only(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(blocks) == 1, f"expected one block, got {blocks}"
    return blocks[0]


@dataclass(frozen=True)
class Statement:
    document: str
    body: dict[str, Any]
    for_each: str | None  # None for a static statement
    actions: tuple[str, ...]  # with a reference to a local list resolved

    @property
    def sid(self) -> str:
        return str(self.body.get("sid", ""))

    @property
    def effect(self) -> str:
        return str(self.body.get("effect", "Allow"))

    @property
    def principals(self) -> list[str]:
        ids: list[str] = []
        for principal in self.body.get("principals", []):
            value = expr(principal["identifiers"])
            ids.extend(value if isinstance(value, list) else [value])
        return ids

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.body.get("condition", []))

    def condition(self, variable: str) -> dict[str, Any] | None:
        matches = [c for c in self.conditions if c.get("variable") == variable]
        assert len(matches) <= 1, f"{self.document}/{self.sid}: {variable} tested twice"
        return matches[0] if matches else None

    def __str__(self) -> str:
        return f"{self.document}/{self.sid or '<no sid>'}"


def statements(directory: Path, document: str) -> list[Statement]:
    """Static statements and the content of dynamic "statement" blocks of one document."""
    body = policy_documents(directory)[document]
    found = [
        Statement(document, s, None, actions_of(directory, s)) for s in body.get("statement", [])
    ]
    for dynamic in body.get("dynamic", []):
        for block_name, block in dynamic.items():
            if block_name == "statement":
                content = only(block["content"])
                for_each = str(expr(block["for_each"]))
                found.append(Statement(document, content, for_each, actions_of(directory, content)))
    return found


def actions_of(directory: Path, statement: dict[str, Any]) -> tuple[str, ...]:
    actions = expr(statement.get("actions", []))
    if isinstance(actions, str):
        match = re.fullmatch(r"local\.(\w+)", actions)
        assert match, f"actions must be a list or a local list: {actions}"
        actions = locals_of(directory)[match.group(1)]
    assert isinstance(actions, list), actions
    return tuple(str(a) for a in actions)


def platform_role_documents() -> dict[str, list[Statement]]:
    """The platform module's policy documents that become platform role permissions."""
    attached = {
        str(expr(policy["policy"]))
        for policy in resources(PLATFORM, "aws_iam_role_policy").values()
    }
    documents = {}
    for reference in attached:
        match = re.fullmatch(r"data\.aws_iam_policy_document\.(\w+)\.json", reference)
        assert match, f"a role policy is not built by aws_iam_policy_document: {reference}"
        documents[match.group(1)] = statements(PLATFORM, match.group(1))
    documents["provisioning"] = statements(PLATFORM, "provisioning")
    return documents


def customer_key_platform_statements() -> list[Statement]:
    """Statements of the customer's key policy that name a platform role (Allow and Deny)."""
    found = []
    for document in policy_documents(CUSTOMER_KEY):
        for statement in statements(CUSTOMER_KEY, document):
            if PLATFORM_ROLE_VARS & set(statement.principals):
                found.append(statement)
    return found


def platform_statements() -> list[Statement]:
    roles = [s for docs in platform_role_documents().values() for s in docs]
    return roles + customer_key_platform_statements()


# --------------------------------------------------------------------------------------
# Layout, variables, outputs, versions, READMEs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", ROOTS, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_module_has_the_standard_files(directory: Path) -> None:
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (directory / name).is_file(), f"{directory.relative_to(ROOT)} lacks {name}"


def test_every_tf_file_parses() -> None:
    assert len(TF_FILES) >= 12, f"expected the modules and the example, found {TF_FILES}"
    for path in TF_FILES:
        parse(path)


@pytest.mark.parametrize("directory", ROOTS, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_versions_pin_terraform_and_aws_provider(directory: Path) -> None:
    terraform = only(parse(directory / "versions.tf")["terraform"])
    assert terraform["required_version"] == ">= 1.5"
    aws = only(terraform["required_providers"])["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.match(r">= 5\.\d+", aws["version"]), aws["version"]


def test_every_variable_is_typed_and_described() -> None:
    variables = [(path, name, body) for path in TF_FILES for name, body in named_in(path)]
    assert len(variables) > 40
    for path, name, body in variables:
        where = f"{path.relative_to(ROOT)}: variable {name}"
        assert "type" in body, f"{where} has no type"
        assert str(body.get("description", "")).strip(), f"{where} has no description"


def named_in(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, body) for block in parse(path).get("variable", []) for name, body in block.items()
    ]


# Names of inputs that have a format or a range: each must carry a validation block.
VALIDATED_NAME = re.compile(
    r"(_arns?|org_ids|^orgs|kek_ids|_id|_days|_seconds|_timeout|_size|_concurrency|_count"
    r"|_prefix|_name|_path|_mode|_expression|_timezone|region|architecture|log_level)$"
)


def test_variables_with_a_format_or_range_are_validated() -> None:
    checked = 0
    for path in TF_FILES:
        for name, body in named_in(path):
            if VALIDATED_NAME.search(name) and expr(body["type"]) != "bool":
                checked += 1
                where = f"{path.relative_to(ROOT)}: variable {name}"
                assert body.get("validation"), f"{where} has no validation block"
                for validation in body["validation"]:
                    assert validation.get("condition") and validation.get("error_message"), where
    assert checked > 30


def test_every_output_is_described() -> None:
    outputs = [(path, block) for path in TF_FILES for block in parse(path).get("output", [])]
    assert len(outputs) > 20
    for path, block in outputs:
        for name, body in block.items():
            assert str(body.get("description", "")).strip(), (
                f"{path.relative_to(ROOT)}: output {name} has no description"
            )


@pytest.mark.parametrize("directory", ROOTS, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_readme_shows_init_plan_apply(directory: Path) -> None:
    readme = (directory / "README.md").read_text()
    for step in ("terraform init", "terraform plan", "terraform apply"):
        assert step in readme, f"{directory.relative_to(ROOT)}/README.md does not show `{step}`"


def test_platform_readme_has_the_reserved_concurrency_section() -> None:
    readme = (PLATFORM / "README.md").read_text()
    assert re.search(r"^## Reserved concurrency$", readme, re.MULTILINE)


def test_no_todo_or_commented_out_code() -> None:
    for path in [*TF_FILES, *TERRAFORM.rglob("README.md")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            assert not re.search(r"\b(TODO|XXX|FIXME)\b", line), where
            if path.suffix == ".tf":
                code = re.match(
                    r"\s*(#|//)\s*((resource|data|module|variable|output)\s+\"|locals\s*\{)", line
                )
                assignment = re.match(r"\s*(#|//)\s*[a-z_]+\s*=\s*\S", line)
                assert not (code or assignment), f"{where}: commented-out code"


def test_checkov_skips_carry_a_reason() -> None:
    skips = 0
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                skips += 1
                match = re.fullmatch(r"\s*#checkov:skip=(CKV2?_AWS_\d+):(.+)", line)
                assert match, f"{path.relative_to(ROOT)}: malformed skip: {line.strip()}"
                assert len(match.group(2).split()) >= 6, f"reason too short: {line.strip()}"
    assert skips > 0


# --------------------------------------------------------------------------------------
# Policies: no wildcard, every KMS permission tied to the org context
# --------------------------------------------------------------------------------------


def test_platform_roles_are_found() -> None:
    """Guards the policy tests below against finding nothing to check."""
    assert set(platform_role_documents()) == set(ROLE_KMS_ACTIONS)
    allowed = {s.sid for s in customer_key_platform_statements() if s.effect == "Allow"}
    assert allowed == set(KEY_POLICY_ACTIONS)


def test_platform_roles_have_no_managed_or_inline_json_policies() -> None:
    for resource_type in ("aws_iam_role_policy_attachment", "aws_iam_policy"):
        assert not resources(PLATFORM, resource_type), f"{resource_type} bypasses these checks"
    for name, role in resources(PLATFORM, "aws_iam_role").items():
        assert "managed_policy_arns" not in role and "inline_policy" not in role, name


def test_no_platform_role_is_granted_a_wildcard_action() -> None:
    for statement in platform_statements():
        if statement.effect == "Allow":
            for action in statement.actions:
                assert "*" not in action, f"{statement} grants {action}"


def test_kms_permissions_are_exactly_what_each_role_needs() -> None:
    for document, docs in platform_role_documents().items():
        kms = {a for s in docs if s.effect == "Allow" for a in s.actions if a.startswith("kms:")}
        assert kms == ROLE_KMS_ACTIONS[document], f"{document}: {sorted(kms)}"
    for statement in customer_key_platform_statements():
        if statement.effect == "Allow":
            assert set(statement.actions) == KEY_POLICY_ACTIONS[statement.sid], str(statement)


def test_every_platform_kms_permission_carries_the_org_context_condition() -> None:
    checked = 0
    for statement in platform_statements():
        if statement.effect != "Allow" or not any(a.startswith("kms:") for a in statement.actions):
            continue
        checked += 1
        org = statement.condition(ORG_CONTEXT)
        assert org, f"{statement}: no {ORG_CONTEXT} condition"
        assert org["test"] in {"StringEquals", "ForAnyValue:StringEquals"}, str(statement)
        assert expr(org["values"]) == "local.org_ids", f"{statement}: {org['values']}"
        purpose = statement.condition(PURPOSE_CONTEXT)
        assert purpose and purpose["test"] == "StringEquals" and purpose["values"] == ["kek"]
    assert checked == 8  # four role documents in the platform, four key policy statements


def test_org_ids_come_from_the_org_inputs() -> None:
    assert squash(expr(locals_of(CUSTOMER_KEY)["org_ids"])) == "sort(distinct(var.org_ids))"
    assert squash(expr(locals_of(PLATFORM)["org_ids"])) == "sort(keys(var.orgs))"


def test_platform_kms_permissions_name_only_the_customer_keys() -> None:
    assert squash(expr(locals_of(PLATFORM)["customer_key_arns"])) == (
        "sort(distinct(flatten(values(var.orgs))))"
    )
    for statements_ in platform_role_documents().values():
        for statement in statements_:
            if any(a.startswith("kms:") for a in statement.actions):
                assert expr(statement.body["resources"]) == "local.customer_key_arns", str(
                    statement
                )
                assert statement.for_each == "local.serves_orgs ? [1] : []", str(statement)


def test_key_policy_statements_come_only_from_the_platform_account() -> None:
    for statement in customer_key_platform_statements():
        if statement.effect != "Allow":
            continue
        for variable in ("aws:PrincipalAccount", "kms:CallerAccount"):
            condition = statement.condition(variable)
            assert condition, f"{statement}: no {variable} condition"
            assert condition["test"] == "StringEquals"
            assert expr(condition["values"]) == ["var.platform_account_id"], str(statement)
        assert len(statement.principals) == 1, str(statement)
        assert statement.for_each is not None and "local.key_policy_access" in statement.for_each
    access = squash(expr(locals_of(CUSTOMER_KEY)["key_policy_access"]))
    assert access == 'var.platform_access_enabled&&var.access_mode=="key_policy"'


def test_key_policy_statements_have_stable_unique_sids() -> None:
    for document in policy_documents(CUSTOMER_KEY):
        sids = [s.sid for s in statements(CUSTOMER_KEY, document)]
        assert all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids), sids
        assert len(sids) == len(set(sids)), sids


def test_grants_are_constrained_to_one_org() -> None:
    grant = resources(CUSTOMER_KEY, "aws_kms_grant")["platform"]
    assert expr(grant["for_each"]) == "local.grants"
    grants = squash(expr(locals_of(CUSTOMER_KEY)["grants"]))
    assert grants.startswith("local.grant_access?"), grants
    subset = only(grant["constraints"])["encryption_context_subset"]
    assert expr(subset["kmsbridge:org"]) == "each.value.org"
    assert subset["kmsbridge:purpose"] == "kek"
    grantees = squash(expr(locals_of(CUSTOMER_KEY)["platform_grantees"]))
    assert 'decryptor={arn=var.decryptor_role_arn,operations=["Decrypt"]}' in grantees
    assert "*" not in grantees


def test_table_access_is_read_only_for_the_decryptor_and_tied_to_the_orgs() -> None:
    locals_ = locals_of(PLATFORM)
    assert set(locals_["table_read_actions"]) == TABLE_READ
    assert set(locals_["table_write_actions"]) == TABLE_WRITE
    expected = {
        "decryptor": "local.table_read_actions",
        "rotation": "local.table_write_actions",
        "jobs": "local.table_write_actions",
        "provisioning": "local.table_write_actions",
    }
    for document, statements_ in platform_role_documents().items():
        table = [s for s in statements_ if "local.arns.table" in json.dumps(s.body)]
        if document == "scheduler":
            assert not table
            continue
        statement = only([s.body for s in table])
        assert expr(statement["actions"]) == expected[document], document
        leading = only(
            [c for c in statement["condition"] if c["variable"] == "dynamodb:LeadingKeys"]
        )
        assert leading["test"] == "ForAllValues:StringEquals"
        assert expr(leading["values"]) == "local.org_ids"


def test_role_policies_name_the_modules_own_resources() -> None:
    """The role policies use ARNs built from names (so plans show them): same names."""
    arns = {k: expr(v) for k, v in locals_of(PLATFORM)["arns"].items()}
    names = {k: expr(v) for k, v in locals_of(PLATFORM)["names"].items()}
    assert names["jobs"] == "${var.name_prefix}-jobs"
    assert arns["table"].endswith(":table/${var.table_name}")
    assert expr(resources(PLATFORM, "aws_dynamodb_table")["keks"]["name"]) == "var.table_name"
    assert arns["playback_bucket"].endswith(":s3:::${local.playback_bucket_name}")
    bucket = resources(PLATFORM, "aws_s3_bucket")["playback"]
    assert expr(bucket["bucket"]) == "local.playback_bucket_name"
    queues = resources(PLATFORM, "aws_sqs_queue")
    for arn, queue in (("jobs_queue", "jobs"), ("rotation_dlq", "rotation_dlq")):
        key = queue.removesuffix("_queue")
        assert arns[arn].endswith(f":${{local.names.{key}}}"), arn
        assert expr(queues[queue]["name"]) == f"local.names.{key}", queue
    assert arns["rotation_function"].endswith(":function:${local.names.rotation}")
    functions = resources(PLATFORM, "aws_lambda_function")
    log_groups = resources(PLATFORM, "aws_cloudwatch_log_group")
    streams = squash(expr(locals_of(PLATFORM)["log_stream_arns"]))
    assert ":log-group:/aws/lambda/${local.names[function]}:*" in streams
    for name in ("decryptor", "rotation", "jobs"):
        assert expr(functions[name]["function_name"]) == f"local.names.{name}"
        assert log_groups[name]["name"] == f"/aws/lambda/${{local.names.{name}}}"


# --------------------------------------------------------------------------------------
# Revocation by period: the revoked_kek_ids deny (issue 11)
# --------------------------------------------------------------------------------------


def test_revoked_kek_ids_variable() -> None:
    variable = named(CUSTOMER_KEY, "variable")["revoked_kek_ids"]
    assert expr(variable["type"]) == "list(string)"
    assert variable["default"] == []
    assert variable["description"].startswith("KEK ids whose recordings must not play; add a Deny")
    conditions = [v["condition"] for v in variable["validation"]]
    assert any("^[0-9a-f]{64}$" in c and "var.revoked_kek_ids" in c for c in conditions)


def test_revoked_kek_ids_add_a_deny_only_when_not_empty() -> None:
    body = policy_documents(CUSTOMER_KEY)["this"]
    assert all(s.get("sid") != REVOKED_SID for s in body.get("statement", [])), "must be dynamic"
    denies = [s for s in statements(CUSTOMER_KEY, "this") if s.sid == REVOKED_SID]
    deny = only(denies)
    assert deny.for_each is not None
    assert re.fullmatch(
        r"length\(var\.revoked_kek_ids\)(>0|!=0)\?\[1\]:\[\]", squash(deny.for_each)
    ), deny.for_each
    assert deny.effect == "Deny"
    assert deny.actions == ("kms:Decrypt",)
    assert deny.principals == ["var.decryptor_role_arn"]
    assert expr(deny.body["resources"]) == ["*"]
    condition = only(deny.conditions)
    assert condition["test"] == "ForAnyValue:StringEquals"
    assert condition["variable"] == KEK_CONTEXT
    assert expr(condition["values"]) == "var.revoked_kek_ids"


def test_example_passes_revoked_kek_ids_through() -> None:
    module = parse(EXAMPLE / "main.tf")["module"]
    customer_key = next(m["customer_key"] for m in module if "customer_key" in m)
    assert expr(customer_key["revoked_kek_ids"]) == "var.revoked_kek_ids"


# --------------------------------------------------------------------------------------
# Resources: table, logs, functions, queues, schedule, bucket
# --------------------------------------------------------------------------------------


def test_key_is_symmetric_with_rotation_and_a_deletion_window() -> None:
    key = resources(CUSTOMER_KEY, "aws_kms_key")["this"]
    assert key["customer_master_key_spec"] == "SYMMETRIC_DEFAULT"
    assert key["enable_key_rotation"] is True
    assert expr(key["rotation_period_in_days"]) == "var.rotation_period_in_days"
    assert expr(key["policy"]) == "data.aws_iam_policy_document.this.json"
    variables = named(CUSTOMER_KEY, "variable")
    assert variables["deletion_window_in_days"]["default"] == 30


def test_key_table_has_pitr_deletion_protection_and_encryption() -> None:
    table = resources(PLATFORM, "aws_dynamodb_table")["keks"]
    assert only(table["point_in_time_recovery"])["enabled"] is True
    assert table["deletion_protection_enabled"] is True
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert (table["hash_key"], table["range_key"]) == ("org", "kek")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {("org", "S"), ("kek", "S")}
    assert only(table["server_side_encryption"])["enabled"] is True
    assert named(PLATFORM, "variable")["table_name"]["default"] == "kmsbridge-keks"


def test_log_groups_have_retention() -> None:
    log_groups = resources(PLATFORM, "aws_cloudwatch_log_group")
    assert set(log_groups) == {"decryptor", "rotation", "jobs"}
    for name, log_group in log_groups.items():
        assert expr(log_group.get("retention_in_days")) == "var.log_retention_in_days", name
    variable = named(PLATFORM, "variable")["log_retention_in_days"]
    assert variable["default"] == 365
    allowed = re.search(r"contains\(\[([\d, ]+)\]", only(variable["validation"])["condition"])
    assert allowed, "retention is not validated against CloudWatch's values"
    assert {int(d) for d in allowed.group(1).split(",")} == CLOUDWATCH_RETENTION_DAYS


def test_every_function_logs_to_its_own_log_group() -> None:
    for name, function in resources(PLATFORM, "aws_lambda_function").items():
        logging = only(function["logging_config"])
        assert expr(logging["log_group"]) == f"aws_cloudwatch_log_group.{name}.name", name


FUNCTION_ENVIRONMENT = {
    "decryptor": {"KMSBRIDGE_MAX_AGE_SECONDS", "KMSBRIDGE_PLAYBACK_BUCKET"},
    "rotation": set(),
    "jobs": {"KMSBRIDGE_MAX_AGE_SECONDS", "KMSBRIDGE_JOBS_QUEUE_URL", "KMSBRIDGE_EXPORT_BUCKET"},
}
COMMON_ENVIRONMENT = {
    "KMSBRIDGE_TABLE",
    "KMSBRIDGE_ALLOWED_ORGS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
}


def test_functions_run_the_handlers_with_tracing_and_their_environment() -> None:
    functions = resources(PLATFORM, "aws_lambda_function")
    assert set(functions) == set(FUNCTION_ENVIRONMENT)
    common = expr(locals_of(PLATFORM)["common_environment"])
    assert set(re.findall(r"\b([A-Z][A-Z_]+)\s*=", common)) == COMMON_ENVIRONMENT
    assert 'POWERTOOLS_SERVICE_NAME = "kmsbridge"' in common
    for name, function in functions.items():
        assert function["runtime"] == "python3.11", name
        assert function["handler"] == "handler.handler", name
        assert only(function["tracing_config"])["mode"] == "Active", name
        assert expr(function["filename"]) == f"var.{name}_zip_path", name
        assert expr(function["source_code_hash"]) == f"filebase64sha256(var.{name}_zip_path)"
        assert "reserved_concurrent_executions" in function, name
        environment = expr(only(function["environment"])["variables"])
        assert "local.common_environment" in environment, name
        assert (
            set(re.findall(r"\b(KMSBRIDGE_[A-Z_]+)\s*=", environment))
            == (FUNCTION_ENVIRONMENT[name])
        ), name
    variables = named(PLATFORM, "variable")
    assert variables["decryptor_reserved_concurrency"]["default"] == 10
    assert variables["max_age_seconds"]["default"] == 60


def test_zip_paths_default_to_the_lambda_build_output_in_the_example() -> None:
    variables = named(EXAMPLE, "variable")
    for name in ("decryptor", "rotation", "jobs"):
        assert variables[f"{name}_zip_path"]["default"] == f"../../../dist/{name}.zip"
    for block in parse(EXAMPLE / "main.tf")["module"]:
        for module in block.values():
            assert module["source"].startswith("../../modules/"), module["source"]


def test_playback_roles_may_invoke_only_the_decryptor() -> None:
    permission = resources(PLATFORM, "aws_lambda_permission")["playback"]
    assert expr(permission["for_each"]) == "toset(var.playback_role_arns)"
    assert permission["action"] == "lambda:InvokeFunction"
    assert expr(permission["function_name"]) == "aws_lambda_function.decryptor.function_name"
    assert expr(permission["principal"]) == "each.value"


def test_jobs_queue_has_a_dead_letter_queue_and_reports_item_failures() -> None:
    queues = resources(PLATFORM, "aws_sqs_queue")
    for name, queue in queues.items():
        assert queue["sqs_managed_sse_enabled"] is True, name
    redrive = squash(expr(queues["jobs"]["redrive_policy"]))
    assert "deadLetterTargetArn=aws_sqs_queue.jobs_dlq.arn" in redrive
    assert "maxReceiveCount=var.jobs_max_receive_count" in redrive
    mapping = resources(PLATFORM, "aws_lambda_event_source_mapping")["jobs"]
    assert expr(mapping["event_source_arn"]) == "aws_sqs_queue.jobs.arn"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]


def test_rotation_runs_on_an_eventbridge_scheduler_schedule() -> None:
    schedule = resources(PLATFORM, "aws_scheduler_schedule")["rotation"]
    assert expr(schedule["schedule_expression"]) == "var.rotation_schedule_expression"
    target = only(schedule["target"])
    assert expr(target["arn"]) == "aws_lambda_function.rotation.arn"
    assert expr(target["role_arn"]) == "aws_iam_role.scheduler.arn"
    assert expr(only(target["dead_letter_config"])["arn"]) == "aws_sqs_queue.rotation_dlq.arn"
    default = named(PLATFORM, "variable")["rotation_schedule_expression"]["default"]
    assert default == "rate(1 day)"


def test_playback_bucket_is_private_encrypted_and_expires_copies_within_a_day() -> None:
    block = only(list(resources(PLATFORM, "aws_s3_bucket_public_access_block").values()))
    for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert block[setting] is True, setting
    assert block["restrict_public_buckets"] is True
    encryption = only(
        list(resources(PLATFORM, "aws_s3_bucket_server_side_encryption_configuration").values())
    )
    default = only(only(encryption["rule"])["apply_server_side_encryption_by_default"])
    assert default["sse_algorithm"] in {"AES256", "aws:kms"}
    lifecycle = only(list(resources(PLATFORM, "aws_s3_bucket_lifecycle_configuration").values()))
    rule = only(lifecycle["rule"])
    assert rule["status"] == "Enabled"
    assert only(rule["filter"]) == {}, "the expiry must cover every object"
    assert only(rule["expiration"])["days"] == 1
    assert only(rule["abort_incomplete_multipart_upload"])["days_after_initiation"] == 1


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
