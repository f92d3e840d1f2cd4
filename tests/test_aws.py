"""The one translator of AWS errors (kmsbridge/aws.py), through the real adapters on moto.

Throttling and 5xx of any service are retryable (KMS_UNAVAILABLE for KMS, UNAVAILABLE for
the others); configuration mistakes are INVALID_REQUEST with exit status 2 and a sentence
that names the profile, region and table.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from kmsbridge.aws import AwsClients, AwsSettings, error_for, error_for_code
from kmsbridge.cli import exit_codes
from kmsbridge.errors import (
    AccessRevoked,
    ConfigurationError,
    InternalError,
    KmsUnavailable,
    NotFound,
    Unavailable,
)
from kmsbridge.integrations.s3 import S3Object
from kmsbridge.recordings.codec import read_header
from kmsbridge.recordings.ranges import decrypt_range
from tests.cli.test_cli import assert_fails, kmsbridge
from tests.conftest import REGION, World


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def answer_with(status: int, code: str, json_protocol: bool = True) -> Callable[..., AWSResponse]:
    """A before-send hook: every request of the service gets this error answer."""

    def hook(request: Any, **_: Any) -> AWSResponse:
        if json_protocol:
            body = json.dumps({"__type": code, "message": "injected"}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0"}
        else:
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            headers = {"Content-Type": "application/xml"}
        return AWSResponse(request.url, status, headers, _Body(body))

    return hook


def client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


@pytest.mark.parametrize("service", ["dynamodb", "s3", "sqs", "lambda"])
@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("ProvisionedThroughputExceededException", 400),
     ("SlowDown", 503), ("Weird", 500)],
)  # fmt: skip
def test_throttling_and_5xx_of_any_other_service_are_retryable_unavailable(
    service: str, code: str, status: int
) -> None:
    error = error_for(client_error(code, status), service)
    assert isinstance(error, Unavailable)
    assert error.code == "UNAVAILABLE" and error.retryable


def test_kms_keeps_its_own_codes() -> None:
    assert isinstance(error_for(client_error("ThrottlingException"), "kms"), KmsUnavailable)
    assert isinstance(error_for(client_error("DisabledException"), "kms"), AccessRevoked)
    assert isinstance(error_for_code("kms", "AccessDeniedException"), AccessRevoked)
    assert isinstance(error_for_code("kms", "NotFoundException"), NotFound)


def test_other_services_denials_and_credentials_are_configuration_errors() -> None:
    denied = error_for(client_error("AccessDenied", 403), "s3", what="the playback bucket")
    assert isinstance(denied, ConfigurationError) and "playback bucket" in denied.message
    for code in ("UnrecognizedClientException", "ExpiredToken", "InvalidClientTokenId"):
        assert isinstance(error_for_code("dynamodb", code), ConfigurationError)
    assert isinstance(error_for(NoCredentialsError(), "dynamodb"), ConfigurationError)
    assert isinstance(error_for(client_error("NoSuchKey"), "s3"), NotFound)
    assert isinstance(error_for(client_error("Unheard"), "s3"), InternalError)


def test_unreachable_services_are_retryable() -> None:
    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert isinstance(error_for(down, "kms"), KmsUnavailable)
    assert isinstance(error_for(down, "dynamodb"), Unavailable)


def test_dynamodb_throttling_on_the_decryptors_hot_path_is_retryable(world: World) -> None:
    """Before, a throttled GetItem became a non-retryable INTERNAL and playback gave up."""
    header = read_header(io.BytesIO(world.encrypt(b"a recording"))).raw
    world.store.client.meta.events.register(
        "before-send.dynamodb", answer_with(400, "ProvisionedThroughputExceededException")
    )
    with pytest.raises(Unavailable) as caught:
        world.decryptor.unwrap(world.org, header)
    assert caught.value.retryable and "key table" in caught.value.message


def test_an_s3_outage_is_unavailable_not_kms_unavailable(world: World) -> None:
    s3 = world.clients.client("s3")
    s3.create_bucket(Bucket="recordings")
    s3.put_object(Bucket="recordings", Key="call.enc", Body=world.encrypt(b"x" * 100))
    s3.meta.events.register("before-send.s3", answer_with(503, "SlowDown", json_protocol=False))
    with pytest.raises(Unavailable) as caught:
        decrypt_range(
            S3Object(s3, "recordings", "call.enc"), 0, 10, org=world.org, data_keys=world.decryptor
        )
    assert caught.value.code == "UNAVAILABLE"


def test_a_bad_endpoint_url_is_a_configuration_error() -> None:
    clients = AwsClients(AwsSettings(region=REGION, endpoint_url="not a url"))
    with pytest.raises(ConfigurationError, match="not a valid URL"):
        clients.client("kms")


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": REGION,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    return env | extra


def test_cli_unknown_profile_exits_2_naming_it(tmp_path: Path) -> None:
    run = kmsbridge("kek", "list", "acme", env=offline_env(tmp_path, AWS_PROFILE="nobody"))
    assert_fails(run, "INVALID_REQUEST")
    assert run.code == exit_codes.USAGE == 2
    assert "'nobody' does not exist" in run.err and "profile nobody" in run.err


def test_cli_without_credentials_exits_2_naming_region_and_table(tmp_path: Path) -> None:
    env = offline_env(tmp_path, KMSBRIDGE_TABLE="keks-prod")
    run = kmsbridge("kek", "list", "acme", env=env)
    assert_fails(run, "INVALID_REQUEST")
    assert "no AWS credentials" in run.err
    assert f"region {REGION}" in run.err and "table keks-prod" in run.err


def test_cli_bad_endpoint_url_exits_2(tmp_path: Path) -> None:
    env = offline_env(tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    run = kmsbridge("kek", "list", "acme", "--endpoint-url", "::nonsense::", env=env)
    assert_fails(run, "INVALID_REQUEST")
    assert "not a valid URL" in run.err


@pytest.mark.server
def test_cli_missing_table_exits_2_naming_it(moto_server: str, tmp_path: Path) -> None:
    env = offline_env(
        tmp_path,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=moto_server,
    )
    run = kmsbridge("kek", "list", "acme", "--table", "no-such-table", env=env)
    assert_fails(run, "INVALID_REQUEST")
    assert "key table 'no-such-table' does not exist" in run.err
    assert "table no-such-table" in run.err and f"endpoint {moto_server}" in run.err
