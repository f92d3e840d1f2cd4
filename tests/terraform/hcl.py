"""The Terraform files parsed with python-hcl2, for checks that need no terraform binary:
conventions (typed, described, validated variables; described outputs; checkov skip
reasons; prevent_destroy) and the revoked-KEK statement the CLI compares with."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CUSTOMER_KEY = TERRAFORM / "modules" / "customer-key"
PLATFORM = TERRAFORM / "modules" / "platform"
EXAMPLE = TERRAFORM / "examples" / "complete"
ROOTS = [CUSTOMER_KEY, PLATFORM, EXAMPLE]
REVOKED_SID = "DenyDecryptRevokedKekPeriods"


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
        return hcl2.load(f, serialization_options=options)


def expr(value: Any) -> Any:
    """The expression inside a whole-string interpolation: "${var.x}" -> "var.x"."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    if isinstance(value, list):
        return [expr(item) for item in value]
    return value


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def only(blocks: Sequence[Any]) -> Any:
    assert len(blocks) == 1, f"expected one block, got {blocks}"
    return blocks[0]


def blocks(directory: Path, kind: str) -> list[tuple[str, Any]]:
    """(name, body) of every ``kind`` block (variable, output, module, resource, data)."""
    found = []
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            found.extend((k, v) for k, v in block.items() if not k.startswith("__"))
    return found


def resources(directory: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for kind, named in blocks(directory, "resource")
        if kind == resource_type
        for name, body in named.items()
    }


def policy_document(directory: Path, name: str) -> dict[str, Any]:
    return {
        n: body
        for kind, named in blocks(directory, "data")
        if kind == "aws_iam_policy_document"
        for n, body in named.items()
    }[name]


def dynamic_statements(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(for_each, content) of each dynamic "statement" block."""
    found = []
    for dynamic in document.get("dynamic", []):
        for block_name, block in dynamic.items():
            if block_name == "statement":
                found.append((str(expr(block["for_each"])), only(block["content"])))
    return found


def module_statement(kek_ids: Sequence[str]) -> dict[str, Any] | None:
    """The customer-key module's DenyDecryptRevokedKekPeriods for these ids, rendered as
    aws_iam_policy_document renders it (a one-element list becomes a string); None when
    the list is empty (the statement is dynamic)."""
    document = policy_document(CUSTOMER_KEY, "administration")
    for_each, deny = only(
        [d for d in dynamic_statements(document) if d[1].get("sid") == REVOKED_SID]
    )
    assert re.fullmatch(r"length\(var\.revoked_kek_ids\)(>0|!=0)\?\[1\]:\[\]", squash(for_each))
    if not kek_ids:
        return None
    values = {"var.revoked_kek_ids": list(kek_ids)}
    principal = only(deny["principals"])
    condition = only(deny["condition"])
    return {
        "Sid": deny["sid"],
        "Effect": deny["effect"],
        "Action": _one(deny["actions"]),
        "Resource": _one(deny["resources"]),
        "Principal": {principal["type"]: _one(principal["identifiers"])},
        "Condition": {
            condition["test"]: {
                condition["variable"]: _one(
                    values.get(expr(condition["values"]), condition["values"])
                )
            }
        },
    }


def rendered(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement as aws_iam_policy_document renders it: one-element lists become strings."""
    return {k: rendered(v) if isinstance(v, dict) else _one(v) for k, v in statement.items()}


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value
