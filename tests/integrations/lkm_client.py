"""Test helpers: Genesys Cloud's side of the LKM contract, with mohawk as the Hawk client.

``function_url_event`` builds the event a Lambda function URL delivers (payload 2.0) for a
request mohawk signed; ``encrypt_data_key`` is what Genesys does with a key pair's
public key (cryptography, from the PKCS#1 DER the endpoint published).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from mohawk import Sender

FUNCTION_HOST = "abcdefghijklmnop.lambda-url.us-east-1.on.aws"
USER_ID = "2f1b6e4c-0b7d-4d7e-9a59-1d5e6a1b2c3d"


def sign(
    credential_id: str,
    key: str,
    url: str,
    method: str,
    body: bytes = b"",
    *,
    ts: int | None = None,
    nonce: str | None = None,
    hash_content: bool = True,
) -> str:
    creds = {"id": credential_id, "key": key, "algorithm": "sha256"}
    content = {"content": body, "content_type": "application/json"} if hash_content else {}
    sender = Sender(
        creds, url, method, always_hash_content=hash_content, _timestamp=ts, nonce=nonce, **content
    )
    return str(sender.request_header)


def function_url_event(
    method: str,
    path: str,
    *,
    credential_id: str | None = None,
    key: str | None = None,
    body: object = None,
    query: str = "",
    authorization: str | None = None,
    base64_body: bool = False,
    **sign_options: Any,
) -> dict[str, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    url = f"https://{FUNCTION_HOST}{path}" + (f"?{query}" if query else "")
    if authorization is None and credential_id is not None and key is not None:
        authorization = sign(credential_id, key, url, method, raw, **sign_options)
    headers = {
        "host": FUNCTION_HOST,
        "content-type": "application/json",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        "purecloud-user-id": USER_ID,
    }
    if authorization is not None:
        headers["authorization"] = authorization
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "domainName": FUNCTION_HOST,
            "http": {"method": method, "path": path, "sourceIp": "203.0.113.7"},
            "requestId": os.urandom(8).hex(),
        },
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode(),
        "isBase64Encoded": base64_body,
    }


def public_key_of(published: str) -> rsa.RSAPublicKey:
    """The key pair's ``publicKey``: base64 of a PKCS#1 RSAPublicKey (no algorithm OID)."""
    der = base64.b64decode(published)
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1) == der
    return key


def encrypt_data_key(published: str, data_key: bytes, pkcs1: bool = False) -> str:
    key = public_key_of(published)
    if pkcs1:
        return base64.b64encode(key.encrypt(data_key, padding.PKCS1v15())).decode()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return base64.b64encode(key.encrypt(data_key, oaep)).decode()
