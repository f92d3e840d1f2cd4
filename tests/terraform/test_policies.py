"""The rendered policies allow the calls kmsbridge makes, and only those (issue 17).

The platform module and two customer keys (tests/terraform/policy_fixture: orgs acme and
globex, each key in its own account) are planned with the real terraform against moto's
server, and the role and key policies read from the plan. The requests are the KMS calls
the code itself makes, recorded from boto3 while it runs on in-process moto: ``org add``
(the operator), the decryptor's access check, an export to a KMS key (the jobs role).
Each is evaluated with tests/terraform/policy.py, which applies AWS's rules (explicit deny
wins; cross-account needs the key policy AND the caller's IAM).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from moto import mock_aws

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.devtools.embedded import embedded_aws
from kmsbridge.export.archive import Exporter, kms_target
from tests.conftest import REGION, Clock, make_world
from tests.terraform import tf
from tests.terraform.policy import (
    Request,
    allowed_by_key,
    allowed_same_account,
    identity_allows,
    kms_request,
)

ACME_KEY = "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GLOBEX_KEY = "arn:aws:kms:eu-west-1:777788889999:key/2234abcd-12ab-34cd-56ef-1234567890ab"
ROLES = ("decryptor", "rotation", "jobs", "operator")


@dataclass(frozen=True)
class Call:
    """One KMS call the code made: the action and its encryption context."""

    action: str
    context: dict[str, str]


@dataclass(frozen=True)
class Recorded:
    org_add: list[Call]
    access_check: list[Call]
    export: list[Call]
    kek_id: str


@dataclass(frozen=True)
class Rendered:
    roles: dict[str, str]
    role_policies: dict[str, str]
    key_policies: dict[str, str]
    jobs_queue_policy: str


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Run the code on in-process moto and keep every KMS call it makes."""
    calls: list[Call] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "kms" and "EncryptionContext" in params:
            calls.append(Call(f"kms:{operation}", dict(params["EncryptionContext"])))
        return original(client, operation, params)

    with pytest.MonkeyPatch.context() as mp:
        settings = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        settings |= {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
        for name, value in settings.items():
            mp.setenv(name, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.setattr(botocore.client.BaseClient, "_make_api_call", record)
        with mock_aws():
            clients = AwsClients(AwsSettings(region=REGION))
            world = make_world(clients, Clock(), org="acme")  # what `org add` runs
            org_add, calls[:] = list(calls), []
            world.decryptor.check_access("acme")
            access_check, calls[:] = list(calls), []
            export_key = clients.client("kms").create_key()["KeyMetadata"]["Arn"]
            exporter = Exporter("acme", world.decryptor, kms_target(export_key), clients)
            exporter.export(io.BytesIO(world.encrypt(b"hello")), name="call-1")
            export = list(calls)
    return Recorded(org_add, access_check, export, world.kek_id)


@pytest.fixture(scope="module")
def rendered(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Plan the fixture against moto's server and read the policies from the plan."""
    tf.require_terraform()
    root = tf.copy_tree(tmp_path_factory.mktemp("policies"))
    fixture = root / "policy_fixture"
    with embedded_aws("eu-west-1") as endpoint:
        env = tf.environment(root, {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "kmsbridge-embedded",
            "AWS_SECRET_ACCESS_KEY": "kmsbridge-embedded", "AWS_REGION": "eu-west-1",
        })  # fmt: skip
        tf.init(fixture, env)
        variables = {
            "acme_key_arn": ACME_KEY,
            "globex_key_arn": GLOBEX_KEY,
            "revoked_kek_ids": json.dumps([recorded.kek_id]),
            "zip_path": "../terraform/modules/platform/tests/handler.zip",
        }
        args = [arg for k, v in variables.items() for arg in ("-var", f"{k}={v}")]
        planned = tf.run(["plan", "-input=false", "-out=plan.bin", *args], fixture, env)
        assert planned.returncode == 0, planned.stdout[-3000:] + planned.stderr[-3000:]
        shown = tf.run(["show", "-json", "plan.bin"], fixture, env)
    plan = json.loads(shown.stdout)
    after = {c["address"]: c["change"]["after"] for c in plan["resource_changes"]}
    outputs = {k: v["value"] for k, v in plan["planned_values"]["outputs"].items()}
    policy = 'module.platform.aws_iam_role_policy.this["{}"]'
    return Rendered(
        roles=outputs["role_arns"],
        role_policies={role: after[policy.format(role)]["policy"] for role in ROLES},
        key_policies={
            ACME_KEY: after["module.acme_key.aws_kms_key.this"]["policy"],
            GLOBEX_KEY: after["module.globex_key.aws_kms_key.this"]["policy"],
        },
        jobs_queue_policy=after["module.platform.aws_sqs_queue_policy.jobs"]["policy"],
    )


def allowed(
    rendered: Rendered, role: str, call: Call, key: str, *, after_revocation: bool = False
) -> bool:
    """Onboarding, playback and export happen before the recorded KEK's period is revoked:
    they are judged by the key policy without the revoked-period deny, unless asked."""
    request = kms_request(rendered.roles[role], call.action, key, call.context)
    key_policy = rendered.key_policies[key]
    if not after_revocation:
        document = json.loads(key_policy)
        document["Statement"] = [
            s for s in document["Statement"] if s.get("Sid") != "DenyDecryptRevokedKekPeriods"
        ]
        assert len(document["Statement"]) < len(json.loads(key_policy)["Statement"])
        key_policy = json.dumps(document)
    return allowed_by_key(request, key_policy, rendered.role_policies[role])


def other_org(call: Call, org: str) -> Call:
    return Call(call.action, call.context | {"kmsbridge:org": org})


def test_the_code_was_recorded(recorded: Recorded) -> None:
    """Guards the tests below against evaluating nothing."""
    assert {c.action for c in recorded.org_add} >= {"kms:GenerateDataKey", "kms:Decrypt"}
    assert {c.action for c in recorded.access_check} == {"kms:Decrypt"}
    purposes = {c.context.get("kmsbridge:purpose") for c in recorded.export}
    assert "export" in purposes
    for call in recorded.org_add + recorded.access_check + recorded.export:
        assert call.context["kmsbridge:org"] == "acme", call


def test_operator_onboards_an_org_cross_account(recorded: Recorded, rendered: Rendered) -> None:
    for call in recorded.org_add:
        assert allowed(rendered, "operator", call, ACME_KEY), call
        assert allowed(rendered, "rotation", call, ACME_KEY), call  # rotation makes KEKs too


def test_decryptor_decrypts_only_under_its_orgs_context(
    recorded: Recorded, rendered: Rendered
) -> None:
    check = recorded.access_check[0]
    assert allowed(rendered, "decryptor", check, ACME_KEY)
    assert not allowed(rendered, "decryptor", other_org(check, "globex"), ACME_KEY)
    assert not allowed(rendered, "decryptor", check, GLOBEX_KEY)
    no_purpose = Call(
        check.action, {k: v for k, v in check.context.items() if k != "kmsbridge:purpose"}
    )
    assert not allowed(rendered, "decryptor", no_purpose, ACME_KEY)
    for call in recorded.org_add:
        if call.action != "kms:Decrypt":
            assert not allowed(rendered, "decryptor", call, ACME_KEY), call


def test_jobs_export_to_a_registered_kms_key(recorded: Recorded, rendered: Rendered) -> None:
    exports = [c for c in recorded.export if c.context.get("kmsbridge:purpose") == "export"]
    assert exports
    for call in exports:
        assert allowed(rendered, "jobs", call, ACME_KEY), call  # registered for acme
        assert not allowed(rendered, "jobs", call, GLOBEX_KEY), call  # not registered
        assert not allowed(rendered, "jobs", other_org(call, "globex"), ACME_KEY), call
        assert not allowed(rendered, "decryptor", call, ACME_KEY), call
    for call in recorded.export:
        if call.context.get("kmsbridge:purpose") == "kek":
            assert allowed(rendered, "jobs", call, ACME_KEY), call  # unwrap to export


def test_rewrap_of_one_org_under_another_orgs_key_is_denied(
    recorded: Recorded, rendered: Rendered
) -> None:
    """Org acme's KEK wrapped under globex's key: refused by globex's key policy, and by
    the platform's own IAM (one statement per org: no cross product of orgs and keys)."""
    for role in ("operator", "jobs", "rotation"):
        for call in recorded.org_add:
            assert not allowed(rendered, role, call, GLOBEX_KEY), (role, call)
            request = kms_request(rendered.roles[role], call.action, GLOBEX_KEY, call.context)
            assert not identity_allows(request, rendered.role_policies[role]), (role, call)
            request = kms_request(rendered.roles[role], call.action, ACME_KEY, call.context)
            assert identity_allows(request, rendered.role_policies[role]), (role, call)


def test_a_revoked_kek_is_denied_to_every_role(recorded: Recorded, rendered: Rendered) -> None:
    revoked = [c for c in recorded.access_check + recorded.org_add if c.action == "kms:Decrypt"]
    assert revoked and all(c.context["kmsbridge:kek"] == recorded.kek_id for c in revoked)
    for role in ROLES:
        for call in revoked:
            assert allowed(rendered, role, call, ACME_KEY), (role, call)
            assert not allowed(rendered, role, call, ACME_KEY, after_revocation=True), (role, call)
    other = Call("kms:Decrypt", revoked[0].context | {"kmsbridge:kek": os.urandom(32).hex()})
    for role in ROLES:
        assert allowed(rendered, role, other, ACME_KEY, after_revocation=True), role


def test_only_the_operator_sends_jobs(rendered: Rendered) -> None:
    queue = json.loads(rendered.jobs_queue_policy)["Statement"][0]["Resource"]
    for role in ROLES:
        request = Request(
            rendered.roles[role], "sqs:SendMessage", queue, {"aws:SecureTransport": "true"}
        )
        verdict = allowed_same_account(
            request, rendered.jobs_queue_policy, rendered.role_policies[role]
        )
        assert verdict == (role == "operator"), role
    admin = Request(rendered.roles["operator"].replace("kmsbridge-operator", "admin"),
                    "sqs:SendMessage", queue, {"aws:SecureTransport": "true"})  # fmt: skip
    allow_all = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    assert not allowed_same_account(admin, rendered.jobs_queue_policy, allow_all)


def test_the_evaluator_follows_the_documented_rules() -> None:
    """Explicit deny wins; cross-account needs both sides; a missing key fails StringEquals."""
    role = "arn:aws:iam::111122223333:role/r"
    key = "arn:aws:kms:eu-west-1:444455556666:key/k"
    allow_key = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                 "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}  # fmt: skip
    allow_iam = {"Effect": "Allow", "Action": "kms:*", "Resource": key}
    revoked_kek = {"StringEquals": {"kms:EncryptionContext:kmsbridge:kek": "x"}}
    deny = {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*", "Principal": {"AWS": "*"},
            "Condition": revoked_kek}  # fmt: skip

    def doc(*statements: dict[str, Any]) -> str:
        return json.dumps({"Statement": list(statements)})

    request = kms_request(role, "kms:Decrypt", key, {"kmsbridge:kek": "y"})
    assert allowed_by_key(request, doc(allow_key, deny), doc(allow_iam))
    assert not allowed_by_key(request, doc(allow_key), doc())  # IAM missing
    assert not allowed_by_key(request, doc(), doc(allow_iam))  # key policy missing
    revoked = kms_request(role, "kms:Decrypt", key, {"kmsbridge:kek": "x"})
    assert not allowed_by_key(revoked, doc(allow_key, deny), doc(allow_iam))
    conditioned = allow_key | {
        "Condition": {"StringEquals": {"kms:EncryptionContext:kmsbridge:org": "a"}}
    }
    assert not allowed_by_key(request, doc(conditioned), doc(allow_iam))


@pytest.fixture(autouse=True)
def _no_stray_state() -> Iterator[None]:
    yield
    assert not list(Path(tf.TERRAFORM).rglob(".terraform")), "terraform state landed in the tree"
