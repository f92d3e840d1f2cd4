"""Wrapping KEKs under KMS with the ESDK: contexts, several keys, and every KMS error path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from kmsbridge.aws import AwsClients, AwsSettings, error_for_code
from kmsbridge.crypto.kek import KekPublicKey, generate_kek, private_key_pkcs8
from kmsbridge.errors import (
    AccessRevoked,
    IntegrityError,
    InternalError,
    InvalidRequest,
    KmsUnavailable,
    NotFound,
    WrongOrg,
)
from kmsbridge.keys.kms import KekWrapper, distinct_keys, region_of
from tests.conftest import REGION
from tests.harden import allow, iam_enforced

ORG = "acme"


@pytest.fixture
def kek() -> tuple[bytes, KekPublicKey]:
    private, public = generate_kek()
    return private_key_pkcs8(private), public


def new_key(clients: AwsClients, region: str = REGION) -> str:
    return str(clients.client("kms", region).create_key()["KeyMetadata"]["Arn"])


def test_wrap_then_unwrap_returns_the_pkcs8_key(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    blob = wrapper.wrap(pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])
    assert pkcs8 not in blob
    assert (
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])
        == pkcs8
    )


def test_two_keys_in_two_regions_either_one_alone_unwraps(
    aws: AwsClients, kek: tuple[bytes, Any]
) -> None:
    pkcs8, public = kek
    east, west = new_key(aws, "us-east-1"), new_key(aws, "eu-west-1")
    wrapper = KekWrapper(aws)
    blob = wrapper.wrap(
        pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[east, west], registered=[east, west]
    )
    for only in (east, west):
        assert (
            wrapper.unwrap(
                blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[only], registered=[only]
            )
            == pkcs8
        )
    aws.client("kms", "us-east-1").disable_key(KeyId=east.rsplit("/", 1)[1])
    both = [east, west]
    assert (
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=both, registered=both)
        == pkcs8
    )
    aws.client("kms", "eu-west-1").disable_key(KeyId=west.rsplit("/", 1)[1])
    with pytest.raises(AccessRevoked):
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=both, registered=both)


def test_the_local_region_is_tried_first(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    wrapper = KekWrapper(aws)
    east = "arn:aws:kms:us-east-1:111122223333:key/a"
    west = "arn:aws:kms:eu-west-1:111122223333:key/b"
    assert wrapper._local_first([west, east]) == [east, west]


def test_a_blob_of_another_org_is_refused(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    blob = wrapper.wrap(
        pkcs8, org="other", kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
    )
    with pytest.raises(WrongOrg):
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])


def test_a_blob_of_another_kek_is_an_integrity_error(
    aws: AwsClients, kek: tuple[bytes, Any]
) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    blob = wrapper.wrap(pkcs8, org=ORG, kek_id="0" * 64, kms_key_arns=[arn], registered=[arn])
    with pytest.raises(IntegrityError):
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])


def test_a_blob_under_unlisted_keys_is_an_integrity_error_without_a_kms_call(
    aws: AwsClients, kek: tuple[bytes, Any]
) -> None:
    pkcs8, public = kek
    wrapper = KekWrapper(aws)
    listed = [new_key(aws)]
    blob = wrapper.wrap(
        pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=listed, registered=listed
    )
    unlisted = new_key(aws)
    calls = wrapper.kms_calls
    with pytest.raises(IntegrityError, match="not wrapped under any"):
        wrapper.unwrap(
            blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[unlisted], registered=[unlisted]
        )
    assert wrapper.kms_calls == calls


def test_tampered_blob_is_an_integrity_error(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    blob = bytearray(
        wrapper.wrap(pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])
    )
    blob[-200] ^= 1
    with pytest.raises(IntegrityError):
        wrapper.unwrap(
            bytes(blob), org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
        )


def test_pending_deletion_is_access_revoked(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    blob = wrapper.wrap(pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])
    aws.client("kms").schedule_key_deletion(KeyId=arn.rsplit("/", 1)[1], PendingWindowInDays=7)
    with pytest.raises(AccessRevoked):
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])


def test_wrapping_under_an_unknown_key_is_not_found(
    aws: AwsClients, kek: tuple[bytes, Any]
) -> None:
    pkcs8, public = kek
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(NotFound):
        KekWrapper(aws).wrap(
            pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[missing], registered=[missing]
        )


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _answer(status: int, code: str) -> Any:
    def handler(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        return AWSResponse(
            request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body)
        )

    return handler


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "ThrottlingException", KmsUnavailable),
        (500, "KMSInternalException", KmsUnavailable),
        (503, "ServiceUnavailable", KmsUnavailable),
        (400, "DisabledException", AccessRevoked),
        (400, "AccessDeniedException", AccessRevoked),
        (400, "NotFoundException", NotFound),
        (400, "InvalidCiphertextException", IntegrityError),
        (400, "SomethingNewException", InternalError),
    ],
)
def test_kms_errors_after_retries_map_to_one_code(
    aws_credentials: None, kek: tuple[bytes, Any], status: int, code: str, error: type
) -> None:
    from moto import mock_aws

    with mock_aws():
        clients = AwsClients(AwsSettings(region=REGION, max_attempts=2))
        pkcs8, public = kek
        arn = new_key(clients)
        wrapper = KekWrapper(clients)
        blob = wrapper.wrap(
            pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
        )
        clients.client("kms").meta.events.register("before-send.kms.Decrypt", _answer(status, code))
        with pytest.raises(error) as info:
            wrapper.unwrap(
                blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
            )
    assert info.value.retryable is (error is KmsUnavailable)
    assert "injected" not in info.value.message


def test_network_failure_is_kms_unavailable(aws: AwsClients, kek: tuple[bytes, Any]) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    blob = KekWrapper(aws).wrap(
        pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
    )
    unreachable = AwsClients(
        AwsSettings(
            region=REGION,
            endpoint_url="http://127.0.0.1:9",
            max_attempts=1,
            connect_timeout=0.5,
            read_timeout=0.5,
        )
    )
    with pytest.raises(KmsUnavailable) as info:
        KekWrapper(unreachable).unwrap(
            blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
        )
    assert info.value.retryable


def wrapper_as_iam_user(aws: AwsClients, name: str, *actions: str) -> KekWrapper:
    """A KekWrapper whose calls are signed by a new IAM user allowed only ``actions``."""
    iam = aws.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=allow(*actions))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )
    return KekWrapper(AwsClients(AwsSettings(region=REGION), _session=session))


def test_losing_kms_decrypt_in_iam_is_access_revoked(
    aws: AwsClients, kek: tuple[bytes, Any]
) -> None:
    pkcs8, public = kek
    arn = new_key(aws)
    blob = KekWrapper(aws).wrap(
        pkcs8, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
    )
    wrapper = wrapper_as_iam_user(aws, "decryptor", "kms:Decrypt")
    with iam_enforced():
        assert (
            wrapper.unwrap(
                blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn]
            )
            == pkcs8
        )
    aws.client("iam").put_user_policy(
        UserName="decryptor", PolicyName="p", PolicyDocument=allow("kms:DescribeKey")
    )
    with iam_enforced(), pytest.raises(AccessRevoked):
        wrapper.unwrap(blob, org=ORG, kek_id=public.kek_id, kms_key_arns=[arn], registered=[arn])


def test_key_state_reports_kms_state(aws: AwsClients) -> None:
    arn = new_key(aws)
    wrapper = KekWrapper(aws)
    assert wrapper.key_state(arn) == "Enabled"
    aws.client("kms").disable_key(KeyId=arn.rsplit("/", 1)[1])
    assert wrapper.key_state(arn) == "Disabled"


def test_arn_validation_and_replicas() -> None:
    with pytest.raises(InvalidRequest):
        region_of("alias/my-key")
    with pytest.raises(InvalidRequest):
        distinct_keys([])
    east = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234"
    west = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234"
    other = "arn:aws:kms:eu-west-1:111122223333:key/abcd"
    assert distinct_keys([east, west, other, other]) == [east, other]


def test_error_codes_table() -> None:
    assert isinstance(error_for_code("kms", "403"), AccessRevoked)
    assert isinstance(error_for_code("kms", "Weird", 502), KmsUnavailable)
    assert isinstance(error_for_code("kms", "Weird", 400), InternalError)


def test_key_state_without_describe_permission_is_not_visible(aws: AwsClients) -> None:
    arn = new_key(aws)
    wrapper = wrapper_as_iam_user(aws, "no-describe", "kms:Decrypt")
    with iam_enforced():
        assert wrapper.key_state(arn) == "NotVisible"
