"""The CLI and the customer-key module say the same thing about a revoked period.

``access revoke-window`` prints a key-policy statement and a ``revoked_kek_ids`` value; the
module (terraform/modules/customer-key/main.tf, parsed with python-hcl2) turns that value
into its own statement. Rendered as aws_iam_policy_document renders it (a one-element
list becomes a string), the module's statement must equal the CLI's, and the printed ids
must pass the variable's own validation. tests/lifecycle/test_windows_e2e.py applies the module's
rendering through PutKeyPolicy; tests/test_terraform.py checks the HCL itself and checkov.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from kmsbridge.lifecycle.windows import TERRAFORM_VARIABLE, deny_statement, terraform_value
from tests.test_terraform import CUSTOMER_KEY, REVOKED_SID, expr, named, only, squash, statements

ROLE = "arn:aws:iam::111122223333:role/kmsbridge-decryptor"


def module_statement(kek_ids: Sequence[str], decryptor_role_arn: str) -> dict[str, Any] | None:
    """The module's DenyDecryptRevokedKekPeriods for these inputs, as AWS would receive it."""
    deny = only([s for s in statements(CUSTOMER_KEY, "this") if s.sid == REVOKED_SID])
    assert re.fullmatch(
        r"length\(var\.revoked_kek_ids\)(>0|!=0)\?\[1\]:\[\]", squash(str(deny.for_each))
    )
    if not kek_ids:
        return None
    inputs = {"var.decryptor_role_arn": decryptor_role_arn, "var.revoked_kek_ids": list(kek_ids)}

    def value(raw: Any) -> Any:
        raw = expr(raw)
        if isinstance(raw, list):
            return [inputs.get(v, v) for v in raw]
        return inputs.get(raw, raw)

    principal = only(deny.body["principals"])
    condition = only(deny.conditions)
    return {
        "Sid": deny.sid,
        "Effect": deny.effect,
        "Action": _one(list(deny.actions)),
        "Resource": _one(value(deny.body["resources"])),
        "Principal": {principal["type"]: _one(value(principal["identifiers"]))},
        "Condition": {condition["test"]: {condition["variable"]: _one(value(condition["values"]))}},
    }


def rendered(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement as aws_iam_policy_document renders it: one-element lists become strings."""
    if not isinstance(statement, dict):
        return statement
    return {k: rendered(v) if isinstance(v, dict) else _one(v) for k, v in statement.items()}


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def printed_ids(text: str) -> list[str]:
    options = SerializationOptions(strip_string_quotes=True)
    ids: list[str] = hcl2.loads(text + "\n", serialization_options=options)[TERRAFORM_VARIABLE]
    return ids


def test_the_cli_statement_is_the_one_the_module_renders() -> None:
    for count in (1, 3):
        ids = [os.urandom(32).hex() for _ in range(count)]
        assert printed_ids(terraform_value(ids)) == ids
        assert module_statement(ids, ROLE) == rendered(deny_statement(ROLE, ids))


def test_an_empty_value_renders_no_statement() -> None:
    assert printed_ids(terraform_value([])) == []
    assert module_statement([], ROLE) is None


def test_printed_ids_pass_the_variable_validation() -> None:
    variable = named(CUSTOMER_KEY, "variable")[TERRAFORM_VARIABLE]
    assert expr(variable["type"]) == "list(string)" and variable["default"] == []
    (condition,) = [v["condition"] for v in variable["validation"]]
    pattern = re.search(r'regex\("([^"]+)"', condition)
    assert pattern is not None, condition
    ids = [os.urandom(32).hex() for _ in range(4)]
    assert all(re.search(pattern.group(1), k) for k in printed_ids(terraform_value(ids)))
    assert not re.search(pattern.group(1), ids[0].upper())
