"""How kmsbridge reaches AWS: one boto3 session, one client configuration, one error translator.

Settings come from arguments, else from the standard chain (``AWS_REGION``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, instance and Lambda roles). Retries are botocore's
own, in adaptive mode, with bounded connect and read timeouts so no call hangs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)

from kmsbridge.errors import (
    AccessRevoked,
    ConfigurationError,
    IntegrityError,
    InternalError,
    KmsBridgeError,
    KmsUnavailable,
    NotFound,
    Unavailable,
)

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None  # assumed once per process, with the chain's credentials
    max_attempts: int = 4
    connect_timeout: float = 2.0
    read_timeout: float = 5.0

    def client_config(self) -> Config:
        return Config(
            retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            tcp_keepalive=True,
        )


@dataclass
class AwsClients:
    """Creates each client once per (service, region) and reuses it (warm Lambda containers)."""

    settings: AwsSettings = field(default_factory=AwsSettings)
    _session: boto3.Session | None = None
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def on(cls, settings: AwsSettings, botocore_session: Any) -> AwsClients:
        """Clients on a given botocore session (one whose parsed service models are reused)."""
        session = boto3.Session(
            botocore_session=botocore_session,
            profile_name=settings.profile,
            region_name=settings.region,
        )
        return cls(settings, _session=session)

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            try:
                session = boto3.Session(
                    profile_name=self.settings.profile, region_name=self.settings.region
                )
            except ProfileNotFound as exc:
                raise error_for(exc, "sts") from exc
            if self.settings.role_arn:
                session = self._assume_role(session, self.settings.role_arn)
            self._session = session
        return self._session

    def _assume_role(self, base: boto3.Session, role_arn: str) -> boto3.Session:
        sts = base.client(
            "sts",
            region_name=base.region_name or DEFAULT_REGION,
            endpoint_url=self.settings.endpoint_url,
            config=self.settings.client_config(),
        )
        try:
            answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="kmsbridge")
        except (ClientError, BotoCoreError) as exc:
            why = exc.response["Error"].get("Code") if isinstance(exc, ClientError) else None
            raise ConfigurationError(
                f"the role {role_arn} could not be assumed ({why or type(exc).__name__})"
            ) from None
        credentials = answer["Credentials"]
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=base.region_name,
        )

    @property
    def botocore_session(self) -> Any:
        """The botocore session under ``session``, for libraries that take one (the ESDK)."""
        return self.session._session

    @property
    def region(self) -> str:
        return self.session.region_name or DEFAULT_REGION

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                try:
                    self._clients[key] = self.session.client(
                        service,  # type: ignore[call-overload]
                        region_name=region,
                        endpoint_url=self.settings.endpoint_url,
                        config=self.settings.client_config(),
                    )
                except ValueError:  # botocore's "Invalid endpoint"
                    raise ConfigurationError(
                        f"the endpoint URL {self.settings.endpoint_url!r} is not a valid URL"
                    ) from None
            return self._clients[key]


# ---------------------------------------------------------------- the one error translator

# Codes AWS services use for "slow down" or "try again": retryable everywhere.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "TransactionConflictException",
        "SlowDown",
        "LimitExceededException",  # KMS: request quota
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "EC2ThrottledException",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "403",  # moto's IAM enforcement answers a denied action with this code
        "UnauthorizedOperation",
        "AuthorizationError",
        "Forbidden",
    }
)
_MISSING_CODES = frozenset(
    {
        "NotFoundException",
        "ResourceNotFoundException",
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "404",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    }
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
    }
)
# KMS: the customer's key refuses (disabled, pending deletion, policy or grant removed).
_KMS_REVOKED_CODES = _DENIED_CODES | {"DisabledException", "KMSInvalidStateException"}
_KMS_INTEGRITY_CODES = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"}
)
_SERVICE_NAMES = {
    "kms": "KMS",
    "dynamodb": "DynamoDB",
    "s3": "S3",
    "sqs": "SQS",
    "lambda": "Lambda",
    "sts": "STS",
}


def error_for_code(
    service: str,
    code: str,
    status: int | None = None,
    *,
    what: str = "",
    operation: str | None = None,
    arn: str | None = None,
) -> KmsBridgeError:
    """The library error for an AWS error code of ``service`` (after botocore's retries).

    Throttling and 5xx are retryable: ``KMS_UNAVAILABLE`` for KMS, ``UNAVAILABLE`` for any
    other service. KMS refusals are ``ACCESS_REVOKED`` (the customer's decision); another
    service's refusal is a ``ConfigurationError`` (our IAM is wrong), as are rejected
    credentials. ``what`` names the resource in the sentence; for KMS, the ``operation`` and
    key ``arn`` of the call name which key refused what (during a rewrap or a rotation it
    may be the new key, not the org's current one).
    """
    name = _SERVICE_NAMES.get(service, service)
    subject = what or f"the {name} request"
    if code in _RETRYABLE_CODES or (status is not None and status >= 500):
        unavailable = KmsUnavailable if service == "kms" else Unavailable
        return unavailable(f"{name} is throttling or unavailable{_for(what)}; retry later")
    if code in _CREDENTIAL_CODES:
        return ConfigurationError(
            f"AWS did not accept the credentials ({code}): check the profile, the keys and "
            "the region"
        )
    if service == "kms":
        return _kms_error(code, operation, arn)
    if code in _MISSING_CODES:
        return NotFound(f"{subject} does not exist")
    if code in _DENIED_CODES:
        return ConfigurationError(f"this identity is not allowed to use {subject} ({code})")
    return InternalError(f"{name} refused {subject} ({code or 'no error code'})")


# What each KMS operation does for kmsbridge, for messages that say which key refused what.
_KMS_PURPOSE = {
    "Decrypt": "to unwrap a KEK (Decrypt)",
    "GenerateDataKey": "to wrap a KEK (GenerateDataKey)",
    "Encrypt": "to wrap a KEK (Encrypt)",
    "DescribeKey": "to describe itself (DescribeKey)",
}


def _kms_error(code: str, operation: str | None, arn: str | None) -> KmsBridgeError:
    key = f"KMS key {arn}" if arn else "the customer's KMS key"
    purpose = _KMS_PURPOSE.get(operation or "", f"a request ({operation})" if operation else "")
    if code in _KMS_REVOKED_CODES:
        return AccessRevoked(
            f"{key} refused {purpose or 'to unwrap'} (disabled, pending deletion, or "
            "access removed)"
        )
    if code in _MISSING_CODES:
        if arn:
            return NotFound(f"KMS key {arn} does not exist (asked {purpose})")
        return NotFound("the org's KMS key does not exist")
    if code in _KMS_INTEGRITY_CODES:
        return IntegrityError("KMS rejected the wrapped KEK (wrong key or context)")
    return InternalError(f"KMS answered with an unexpected error ({code})")


def error_for(exc: BaseException, service: str, *, what: str = "") -> KmsBridgeError:
    """The library error for any exception a boto3 call of ``service`` raised."""
    if isinstance(exc, KmsBridgeError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error_for_code(service, str(error.get("Code", "")), status, what=what)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigurationError(
            "no AWS credentials found (environment, AWS_PROFILE, or an instance role)"
        )
    if isinstance(exc, ProfileNotFound):
        return ConfigurationError(f"the AWS profile {exc.kwargs.get('profile')!r} does not exist")
    if isinstance(exc, NoRegionError):
        return ConfigurationError("no AWS region is set (--region or AWS_REGION)")
    if isinstance(exc, ParamValidationError):
        return InternalError(f"kmsbridge made an invalid {service} request")
    name = _SERVICE_NAMES.get(service, service)
    unavailable = KmsUnavailable if service == "kms" else Unavailable
    return unavailable(f"{name} is unreachable or timed out{_for(what)}; retry later")


def _for(what: str) -> str:
    return f" for {what}" if what else ""


def client_error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def translated(service: str, what: str = "") -> Iterator[None]:
    """Turn botocore's exceptions raised in the block into library errors (``from`` them)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise error_for(exc, service, what=what) from exc
