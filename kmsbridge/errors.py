"""One error taxonomy: every failure a caller can see has a stable code from DESIGN.md.

Messages are sentences for people. They never carry key material, plaintext data keys
or recording bytes; details that would help an attacker go to debug logs, not here.
"""

from __future__ import annotations

from typing import ClassVar


class KmsBridgeError(Exception):
    """Root of every error kmsbridge raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class InvalidRequest(KmsBridgeError):
    """The caller asked for something malformed or not allowed."""

    code = "INVALID_REQUEST"


class ConflictError(InvalidRequest):
    """A conditional write lost to another writer (code INVALID_REQUEST: retry or re-read)."""


class NotFound(KmsBridgeError):
    """The org, KEK, KMS key or recording does not exist (or was destroyed on purpose)."""

    code = "NOT_FOUND"


class WrongOrg(KmsBridgeError):
    """The recording or key belongs to another org than the one named in the request."""

    code = "WRONG_ORG"


class IntegrityError(KmsBridgeError):
    """A recording, header or wrapped key failed authentication or is malformed."""

    code = "INTEGRITY"


class AccessRevoked(KmsBridgeError):
    """The customer's KMS key refused: disabled, pending deletion, or access removed."""

    code = "ACCESS_REVOKED"


class KmsUnavailable(KmsBridgeError):
    """KMS throttled or failed after botocore's retries; the same call may succeed later."""

    code = "KMS_UNAVAILABLE"
    retryable = True


class Unavailable(KmsBridgeError):
    """Another AWS dependency (the key table, S3, SQS, Lambda) throttled or failed; retry."""

    code = "UNAVAILABLE"
    retryable = True


class ConfigurationError(InvalidRequest):
    """kmsbridge's own settings are wrong: credentials, profile, endpoint, table, variables."""


class InternalError(KmsBridgeError):
    """A fault of kmsbridge or its environment, not of the caller's input."""

    code = "INTERNAL"


ERROR_CODES: tuple[str, ...] = (
    "INVALID_REQUEST",
    "NOT_FOUND",
    "WRONG_ORG",
    "INTEGRITY",
    "ACCESS_REVOKED",
    "KMS_UNAVAILABLE",
    "UNAVAILABLE",
    "INTERNAL",
)

_BY_CODE: dict[str, type[KmsBridgeError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        NotFound,
        WrongOrg,
        IntegrityError,
        AccessRevoked,
        KmsUnavailable,
        Unavailable,
        InternalError,
    )
}


def error_from_code(code: str, message: str) -> KmsBridgeError:
    """Rebuild a library exception from a wire error (for example a Lambda response)."""
    return _BY_CODE.get(code, InternalError)(message)
