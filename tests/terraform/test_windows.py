"""The CLI and the customer-key module say the same thing about a revoked period.

``access revoke-window`` prints a key-policy statement and a ``revoked_kek_ids`` value; the
module turns that value into its own statement (parsed here with python-hcl2; the real
terraform rendering is compared in tests/terraform/test_policies.py). The printed ids must
pass the variable's own validation. tests/test_windows_e2e.py applies the module's
rendering through PutKeyPolicy.
"""

from __future__ import annotations

import os
import re

import hcl2
from hcl2 import SerializationOptions

from kmsbridge.lifecycle.windows import TERRAFORM_VARIABLE, deny_statement, terraform_value
from tests.terraform.hcl import CUSTOMER_KEY, blocks, expr, module_statement, rendered


def printed_ids(text: str) -> list[str]:
    options = SerializationOptions(strip_string_quotes=True)
    ids: list[str] = hcl2.loads(text + "\n", serialization_options=options)[TERRAFORM_VARIABLE]
    return ids


def test_the_cli_statement_is_the_one_the_module_renders() -> None:
    for count in (1, 3):
        ids = [os.urandom(32).hex() for _ in range(count)]
        assert printed_ids(terraform_value(ids)) == ids
        assert module_statement(ids) == rendered(deny_statement(ids))


def test_the_deny_applies_to_every_principal_with_string_equals() -> None:
    statement = module_statement([os.urandom(32).hex()])
    assert statement is not None
    assert statement["Principal"] == {"AWS": "*"}
    assert list(statement["Condition"]) == ["StringEquals"]


def test_an_empty_value_renders_no_statement() -> None:
    assert printed_ids(terraform_value([])) == []
    assert module_statement([]) is None


def test_printed_ids_pass_the_variable_validation() -> None:
    variable = dict(blocks(CUSTOMER_KEY, "variable"))[TERRAFORM_VARIABLE]
    assert expr(variable["type"]) == "list(string)" and variable["default"] == []
    (condition,) = [v["condition"] for v in variable["validation"]]
    pattern = re.search(r'regex\("([^"]+)"', condition)
    assert pattern is not None, condition
    ids = [os.urandom(32).hex() for _ in range(4)]
    assert all(re.search(pattern.group(1), k) for k in printed_ids(terraform_value(ids)))
    assert not re.search(pattern.group(1), ids[0].upper())
