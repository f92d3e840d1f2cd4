"""The playback services' data-key source: the decryptor Lambda, sealed keys only.

``LambdaDataKeySource(function_name)`` is a ``DataKeySource``: give it to
``recordings.decrypt_stream`` or ``playback.esdk_decrypt_stream``. For every header it
makes a fresh ephemeral key pair, invokes the function with ``op=unwrap`` and that
public key, and opens the sealed data key with HPKE, bound to the org, KEK id and
message id the header itself names. It never asks for, nor accepts, a bare data key.
Error responses become the library's exceptions (``errors.error_from_code``).

The invoker is injectable (``invoker=``): a callable from the request event to the
response object, for tests and for callers with their own transport.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import AwsClients, AwsSettings, error_for
from kmsbridge.crypto.message import parse_header
from kmsbridge.crypto.sealing import X25519, EphemeralKey, check_kem
from kmsbridge.errors import (
    IntegrityError,
    InternalError,
    error_from_code,
)
from kmsbridge.recordings.codec import kek_data_key

Invoker = Callable[[dict[str, Any]], Any]
# Long enough for a cold start plus a KMS call; botocore's retries come on top.
INVOKE_READ_TIMEOUT = 30.0


class LambdaDataKeySource:
    """``(org, raw_header) -> data key`` through the decryptor function."""

    def __init__(
        self,
        function_name: str,
        *,
        kem: str = X25519,
        clients: AwsClients | None = None,
        invoker: Invoker | None = None,
    ) -> None:
        self.kem = check_kem(kem)
        if invoker is None:
            invoker = BotoInvoker(
                function_name, clients or AwsClients(AwsSettings(read_timeout=INVOKE_READ_TIMEOUT))
            )
        self._invoke = invoker

    def __call__(self, org: str, header: bytes) -> bytes:
        parsed = parse_header(_reader(header))
        kek_id, _ = kek_data_key(parsed)
        key = EphemeralKey.generate(self.kem)
        response = self._invoke(
            {
                "op": "unwrap",
                "org": org,
                "header": base64.b64encode(header).decode("ascii"),
                "response_key": {
                    "kem": key.kem,
                    "public_key": base64.b64encode(key.public_bytes).decode("ascii"),
                },
            }
        )
        sealed = _sealed_key(response, kek_id)
        return key.open(sealed, org=org, kek_id=kek_id, message_id=parsed.message_id_hex)


def _sealed_key(response: Any, kek_id: str) -> bytes:
    if not isinstance(response, dict):
        raise InternalError("the decryptor answered with something other than a JSON object")
    if response.get("ok") is not True:
        error = response.get("error")
        if not isinstance(error, dict):
            raise InternalError("the decryptor failed without an error object")
        raise error_from_code(str(error.get("code")), str(error.get("message", "")))
    if "data_key" in response:
        raise IntegrityError("the decryptor returned an unsealed data key; refused")
    if response.get("kek") != kek_id:
        raise IntegrityError("the decryptor answered for another KEK than the recording's")
    try:
        return base64.b64decode(str(response["sealed_data_key"]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        raise IntegrityError("the decryptor's sealed data key is missing or malformed") from None


def _reader(raw: bytes) -> Callable[[int], bytes]:
    position = 0

    def read(n: int) -> bytes:
        nonlocal position
        chunk = raw[position : position + n]
        position += len(chunk)
        return chunk

    return read


class BotoInvoker:
    """Invokes the function synchronously through boto3's ``lambda.invoke``."""

    def __init__(self, function_name: str, clients: AwsClients) -> None:
        self.function_name = function_name
        self._clients = clients

    def __call__(self, event: dict[str, Any]) -> Any:
        try:
            answer = self._clients.client("lambda").invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode("utf-8"),
            )
            payload = answer["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            raise error_for(exc, "lambda", what="the decryptor function") from exc
        if answer.get("FunctionError"):
            # The function crashed or timed out in the runtime; its text is not for us.
            raise InternalError("the decryptor function failed to answer (see its logs)")
        try:
            return json.loads(payload)
        except ValueError:
            raise InternalError("the decryptor answered with something other than JSON") from None
