"""The documented key-policy fixture: moto honours one kind of Deny, exactly as AWS documents it.

A Deny on kms:Decrypt with a ForAnyValue:StringEquals (or StringEquals) condition on
kms:EncryptionContext:kmsbridge:kek, set through PutKeyPolicy (AWS KMS Developer Guide,
"kms:EncryptionContext:context-key"). Every other statement is not evaluated, as moto
evaluates none; the statements below that must not match pin that down.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kmsbridge.aws import AwsClients
from kmsbridge.devtools.embedded import kms_policy_denies

KEK_A = "a" * 64
KEK_B = "b" * 64
KEK_C = "c" * 64
ROLE = "arn:aws:iam::111122223333:role/kmsbridge-decryptor"
ROOT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def deny(**overrides: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "DenyDecryptRevokedKekPeriods",
        "Effect": "Deny",
        "Principal": {"AWS": ROLE},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContext:kmsbridge:kek": [KEK_A]}},
    }
    statement.update(overrides)
    return {k: v for k, v in statement.items() if v is not None}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [ROOT, *statements]})


def context(kek: str | None) -> dict[str, str]:
    base = {"kmsbridge:org": "acme", "kmsbridge:purpose": "kek"}
    return base | ({"kmsbridge:kek": kek} if kek is not None else {})


# ------------------------------------------------------------ the evaluation itself


@pytest.mark.parametrize(
    "statement",
    [
        deny(),
        deny(Condition={"StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A}}),
        deny(
            Condition={"ForAnyValue:StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A}}
        ),
        deny(
            Condition={"foranyvalue:stringequals": {"KMS:EncryptionContext:KMSBRIDGE:KEK": [KEK_A]}}
        ),
        deny(Action=["kms:Encrypt", "kms:Decrypt"]),
        deny(Action="KMS:decrypt"),
        deny(Principal="*"),
        deny(Principal={"AWS": [ROLE, "arn:aws:iam::111122223333:role/other"]}),
        deny(Resource=["*"]),
        deny(
            Condition={
                "ForAnyValue:StringEquals": {"kms:EncryptionContext:kmsbridge:kek": [KEK_B, KEK_A]}
            }
        ),
    ],
    ids=[
        "for-any-value",
        "string-equals",
        "single-string-value",
        "case-insensitive-operator-and-key",
        "action-list",
        "action-case",
        "principal-star",
        "principal-list",
        "resource-list",
        "one-of-several-ids",
    ],
)
def test_statements_that_deny_kek_a(statement: dict[str, Any]) -> None:
    document = policy(statement)
    assert kms_policy_denies(document, "kms:Decrypt", context(KEK_A)) == statement.get("Sid")
    assert kms_policy_denies(document, "kms:Decrypt", context(KEK_C)) is None


@pytest.mark.parametrize(
    "statement",
    [
        deny(Effect="Allow"),
        deny(Action="kms:Encrypt"),
        deny(Action="kms:*"),
        deny(Action=None, NotAction="kms:Encrypt"),
        deny(Principal=None, NotPrincipal={"AWS": ROLE}),
        deny(Principal={"Service": "lambda.amazonaws.com"}),
        deny(Principal={"AWS": "not-an-arn"}),
        deny(Resource="arn:aws:kms:us-east-1:111122223333:key/other"),
        deny(Condition={"StringEquals": {"kms:EncryptionContext:kmsbridge:org": KEK_A}}),
        deny(Condition={"StringLike": {"kms:EncryptionContext:kmsbridge:kek": KEK_A}}),
        deny(
            Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A}}
        ),
        deny(Condition={"StringNotEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A}}),
        deny(
            Condition={
                "StringEquals": {
                    "kms:EncryptionContext:kmsbridge:kek": KEK_A,
                    "kms:EncryptionContext:kmsbridge:org": "acme",
                }
            }
        ),
        deny(
            Condition={
                "StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A},
                "Bool": {"aws:SecureTransport": "true"},
            }
        ),
        deny(Condition=None),
        deny(Condition={"StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_A.upper()}}),
        deny(Condition={"StringEquals": {"kms:EncryptionContext:kmsbridge:kek": KEK_B}}),
    ],
    ids=[
        "allow-effect",
        "other-action",
        "wildcard-action-not-modelled",
        "not-action",
        "not-principal",
        "service-principal",
        "malformed-principal",
        "other-resource",
        "other-condition-key",
        "other-operator",
        "for-all-values",
        "negated-operator",
        "two-condition-keys",
        "two-operators",
        "no-condition",
        "values-are-case-sensitive",
        "other-kek-id",
    ],
)
def test_statements_that_must_not_match(statement: dict[str, Any]) -> None:
    assert kms_policy_denies(policy(statement), "kms:Decrypt", context(KEK_A)) is None


def test_only_the_decrypt_action_and_a_kek_context_are_denied() -> None:
    document = policy(deny())
    assert kms_policy_denies(document, "kms:Encrypt", context(KEK_A)) is None
    assert kms_policy_denies(document, "kms:Decrypt", context(None)) is None
    assert kms_policy_denies(document, "kms:Decrypt", {}) is None


@pytest.mark.parametrize("document", [None, "", "not json", "[]", '{"Statement": "x"}'])
def test_unreadable_policies_deny_nothing(document: str | None) -> None:
    assert kms_policy_denies(document, "kms:Decrypt", context(KEK_A)) is None


def test_a_single_statement_object_is_read() -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": deny()})
    assert (
        kms_policy_denies(document, "kms:Decrypt", context(KEK_A)) == "DenyDecryptRevokedKekPeriods"
    )


# ------------------------------------------------------------ through PutKeyPolicy


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return str(info.value.response["Error"]["Code"])


def _exercise(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blobs = {
        kek: kms.encrypt(KeyId=key_id, Plaintext=b"k" * 32, EncryptionContext=context(kek))[
            "CiphertextBlob"
        ]
        for kek in (KEK_A, KEK_B)
    }

    def decrypts(kek: str) -> bool:
        try:
            kms.decrypt(CiphertextBlob=blobs[kek], EncryptionContext=context(kek), KeyId=key_id)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDeniedException"
            return False
        return True

    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(deny()))
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert (decrypts(KEK_A), decrypts(KEK_B)) == (False, True)

    # ReEncrypt is authorized as kms:ReEncryptFrom in AWS, not kms:Decrypt.
    kms.re_encrypt(
        CiphertextBlob=blobs[KEK_A],
        SourceEncryptionContext=context(KEK_A),
        DestinationKeyId=key_id,
        DestinationEncryptionContext=context(KEK_A),
    )

    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(deny(Effect="Allow")))
    assert (decrypts(KEK_A), decrypts(KEK_B)) == (True, True)

    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy())
    assert (decrypts(KEK_A), decrypts(KEK_B)) == (True, True)

    # Key states are still enforced as before, whatever the policy says.
    kms.disable_key(KeyId=key_id)
    assert _code(kms.decrypt, CiphertextBlob=blobs[KEK_B], EncryptionContext=context(KEK_B)) == (
        "DisabledException"
    )


def test_put_key_policy_denies_in_process(aws: AwsClients) -> None:
    _exercise(aws.client("kms"))


def test_put_key_policy_denies_through_the_server(server_aws: AwsClients) -> None:
    _exercise(server_aws.client("kms"))


def test_a_deny_on_another_key_does_not_reach_this_one(aws: AwsClients) -> None:
    kms = aws.client("kms")
    denied, other = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    kms.put_key_policy(KeyId=denied, PolicyName="default", Policy=policy(deny()))
    blob = kms.encrypt(KeyId=other, Plaintext=b"k", EncryptionContext=context(KEK_A))[
        "CiphertextBlob"
    ]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context(KEK_A))["Plaintext"] == b"k"
