"""A small evaluator of AWS policies, enough to check what the Terraform modules render.

It follows the evaluation logic of the IAM User Guide ("Policy evaluation logic") and the
KMS Developer Guide ("Key policies", "Allowing users in other accounts to use a KMS key"),
for the elements these modules use:

- An explicit ``Deny`` that matches, in any policy, wins.
- A KMS key answers only what its key policy allows. A statement naming the caller's role
  itself (in the key's account) allows on its own; a statement naming an account root
  (or ``*``) delegates to that account's IAM, so the caller's identity policy must allow
  too. Cross-account requests therefore always need the key policy AND the caller's IAM.
- Other resources (an SQS queue, an S3 bucket) in the caller's account: the identity
  policy OR the resource policy allows, and no Deny matches.
- Conditions: every key of a condition block must match (AND), any of a key's values may
  (OR). Operators: String(Not)Equals, String(Not)Like, ArnEquals, ArnLike, Bool,
  NumericLessThan, with ``ForAnyValue:`` / ``ForAllValues:`` for multi-valued keys and
  ``IfExists``. A key missing from the request fails a positive operator and passes a
  negated one (as AWS documents); ``ForAllValues`` passes on a missing key.

It is a test oracle, not a replacement for the IAM policy simulator: no NotAction,
NotResource, NotPrincipal, policy variables, SCPs, boundaries or session policies (the
modules render none of those).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One API call: who (a role ARN), what, on which resource, with which context keys."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.principal.split(":")[4]

    def keys(self) -> dict[str, ContextValue]:
        """The request context: the global keys plus the caller's own."""
        return {
            "aws:PrincipalArn": self.principal,
            "aws:PrincipalAccount": self.account,
            "kms:CallerAccount": self.account,
            **self.context,
        }


def kms_request(principal: str, action: str, key_arn: str, context: Mapping[str, str]) -> Request:
    """A KMS call with an encryption context, as KMS exposes it to conditions."""
    keys: dict[str, ContextValue] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    keys["kms:EncryptionContextKeys"] = sorted(context)
    return Request(principal, action, key_arn, keys)


def allowed_by_key(request: Request, key_policy: str, identity_policy: str) -> bool:
    """A KMS call on a customer key: the key policy, then the caller's IAM if it delegates."""
    key = _statements(key_policy)
    identity = _statements(identity_policy)
    if _matching(key, request, "Deny", resource_policy=True) or _matching(
        identity, request, "Deny"
    ):
        return False
    key_allows = _matching(key, request, "Allow", resource_policy=True)
    if not key_allows:
        return False
    key_account = request.resource.split(":")[4]
    names_the_caller = any(
        request.principal in _principals(s) and request.account == key_account for s in key_allows
    )
    return names_the_caller or bool(_matching(identity, request, "Allow"))


def identity_allows(request: Request, identity_policy: str) -> bool:
    """The caller's IAM alone (the platform's side of a cross-account call)."""
    identity = _statements(identity_policy)
    return not _matching(identity, request, "Deny") and bool(_matching(identity, request, "Allow"))


def allowed_same_account(request: Request, resource_policy: str, identity_policy: str) -> bool:
    """A call on a resource of the caller's own account (queue, bucket)."""
    resource = _statements(resource_policy)
    identity = _statements(identity_policy)
    if _matching(resource, request, "Deny", resource_policy=True) or _matching(
        identity, request, "Deny"
    ):
        return False
    return bool(
        _matching(identity, request, "Allow")
        or _matching(resource, request, "Allow", resource_policy=True)
    )


def _statements(policy: str) -> list[dict[str, Any]]:
    if not policy:
        return []
    statements = json.loads(policy)["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    if principal == "*":
        return ["*"]
    return [p for values in principal.values() for p in _list(values)]


def _matching(
    statements: list[dict[str, Any]], request: Request, effect: str, resource_policy: bool = False
) -> list[dict[str, Any]]:
    return [
        s
        for s in statements
        if s["Effect"] == effect
        and (not resource_policy or _principal_matches(s, request))
        and any(_like(a, request.action) for a in _list(s["Action"]))
        and any(_like(r, request.resource) for r in _list(s.get("Resource", "*")))
        and _conditions_hold(s.get("Condition", {}), request.keys())
    ]


def _principal_matches(statement: Mapping[str, Any], request: Request) -> bool:
    root = f"arn:aws:iam::{request.account}:root"
    return any(p in ("*", root, request.principal) for p in _principals(statement))


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], keys: Mapping[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, _list(values), keys)
        for operator, block in conditions.items()
        for key, values in block.items()
    )


def _condition_holds(operator: str, key: str, expected: list[str], keys: Mapping[str, Any]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    negated = "Not" in base
    present = key in keys
    if not present:
        if qualifier == "ForAllValues" or if_exists:
            return True
        return negated and qualifier != "ForAnyValue"
    actual = [str(v) for v in _list(keys[key])]
    if qualifier == "ForAllValues":
        return all(_one_value(base, a, expected) for a in actual)
    if qualifier == "ForAnyValue" or len(actual) != 1:
        return any(_one_value(base, a, expected) for a in actual)
    return _one_value(base, actual[0], expected)


def _one_value(base: str, actual: str, expected: list[str]) -> bool:
    positive = base.replace("Not", "")
    if positive in ("StringEquals", "ArnEquals"):
        hit = actual in expected
    elif positive in ("StringLike", "ArnLike"):
        hit = any(fnmatch.fnmatchcase(actual, e) for e in expected)
    elif positive == "Bool":
        hit = actual.lower() in [e.lower() for e in expected]
    elif positive == "NumericLessThan":
        hit = any(float(actual) < float(e) for e in expected)
    else:
        raise ValueError(f"operator {base} is not modelled")
    return not hit if "Not" in base else hit
