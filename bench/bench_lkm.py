"""The LKM endpoint's warm decrypt against one RSA-3072 decrypt of the same padding.

A warm decrypt is a function URL event through ``lambda/lkm``'s handler with the key
pair's KEK and the Hawk key cached: event parsing, Hawk (header parse, HMAC-SHA256, the
payload hash, timestamp, in-memory nonce store), routing, JSON, the key pair lookup,
``key_transport`` (the RSA decrypt), the audit line and the response. AWS is moto in
process; no AWS call happens on the warm path. Requests are signed with mohawk before
the timing (each with its own nonce), as Genesys Cloud signs them on its side.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from mohawk import Sender
from moto import mock_aws

from bench.common import Result, fmt_ms
from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.devtools.embedded import environment
from kmsbridge.integrations.lkm.app import build_api
from kmsbridge.integrations.lkm.frontends import LkmHandler
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.services import Services, Settings

ORG = "bench"
REGION = "us-east-1"
HOST = "bench.lambda-url.us-east-1.on.aws"
DECRYPT = "/key-management/v1/decrypt"
OAEP_SHA1 = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)


def run(quick: bool = False) -> list[Result]:
    n = 60 if quick else 400
    with _dummy_credentials(), mock_aws():
        clients = AwsClients(AwsSettings(region=REGION))
        arn = clients.client("kms").create_key(Description="bench")["KeyMetadata"]["Arn"]
        store = KeyStore(clients.client("dynamodb"), "kmsbridge-bench-lkm")
        store.create_table()
        wrapper = KekWrapper(clients)
        create_org(store, wrapper, ORG, [arn])
        decryptor = Decryptor(store, wrapper, max_age=3600)
        services = Services(Settings(table=store.table), clients=clients, decryptor=decryptor)
        api = build_api(services)
        handler = LkmHandler(lambda: api)
        credential = api.service.create_credential(ORG, "genesys-bench")
        keypair = api.service.create_keypair(ORG)
        loaded = decryptor.keks.get((ORG, keypair.kek_id))
        if loaded is None:  # warm the caches: one decrypt loads the KEK and the Hawk key
            _call(handler, _events(credential, keypair, OAEP_SHA1, "", 1)[0])
            loaded = decryptor.keks.get((ORG, keypair.kek_id))
        assert loaded is not None
        private = loaded.private
        rows = [
            _row(handler, private, credential, keypair, OAEP_SHA1, "", "RSA-OAEP-SHA1", n),
            _row(
                handler,
                private,
                credential,
                keypair,
                padding.PKCS1v15(),
                "decryptType=pkcs1",
                "PKCS#1 v1.5",
                n,
            ),
        ]
        rows.append(_work_beside_rsa(handler, api, private, credential, keypair, n))
        return rows


def _row(
    handler: LkmHandler,
    private: rsa.RSAPrivateKey,
    credential: object,
    keypair: object,
    pad: padding.AsymmetricPadding,
    query: str,
    label: str,
    n: int,
) -> Result:
    events = _events(credential, keypair, pad, query, n)
    ciphertexts = [base64.b64decode(json.loads(e["body"])["body"]) for e in events]
    rsa_t, ours_t = _per_call(
        [
            (lambda ct: private.decrypt(ct, pad), ciphertexts),
            (lambda event: _call(handler, event), events),
        ]
    )
    return Result(
        "lkm",
        f"warm LKM decrypt ({label}): function URL event, Hawk, key pair, RSA, audit; CPU time",
        fmt_ms(ours_t),
        f"one RSA-3072 {label} decrypt: {fmt_ms(rsa_t)}",
        ours_t / rsa_t,
        "<= 1.5x",
    )


def _work_beside_rsa(
    handler: LkmHandler,
    api: object,
    private: rsa.RSAPrivateKey,
    credential: object,
    keypair: object,
    n: int,
) -> Result:
    """The same requests with the RSA decrypt taken out: what the endpoint itself adds."""
    events = _events(credential, keypair, OAEP_SHA1, "", n)
    ciphertexts = [base64.b64decode(json.loads(e["body"])["body"]) for e in events]
    service = api.service  # type: ignore[attr-defined]
    service.decrypt = lambda *args, **kwargs: b"\0" * 32
    try:
        rsa_t, ours_t = _per_call(
            [
                (lambda ct: private.decrypt(ct, OAEP_SHA1), ciphertexts),
                (lambda event: _call(handler, event), events),
            ]
        )
    finally:
        del service.decrypt
    return Result(
        "lkm",
        "LKM work beside the RSA decrypt (event, Hawk, routing, JSON), CPU time",
        fmt_ms(ours_t),
        f"one RSA-3072 RSA-OAEP-SHA1 decrypt: {fmt_ms(rsa_t)}",
        ours_t / rsa_t,
        "",
    )


def _events(
    credential: object, keypair: object, pad: padding.AsymmetricPadding, query: str, n: int
) -> list[dict[str, object]]:
    public = _public_key(keypair)
    creds = {"id": credential.id, "key": credential.key.decode(), "algorithm": "sha256"}  # type: ignore[attr-defined]
    url = f"https://{HOST}{DECRYPT}" + (f"?{query}" if query else "")
    events = []
    for _ in range(n):
        body = {
            "keypairId": keypair.id,
            "body": base64.b64encode(public.encrypt(os.urandom(32), pad)).decode(),
        }  # type: ignore[attr-defined]
        raw = json.dumps(body).encode()
        header = Sender(creds, url, "POST", content=raw, content_type="application/json")
        events.append(
            {
                "version": "2.0",
                "rawPath": DECRYPT,
                "rawQueryString": query,
                "headers": {
                    "host": HOST,
                    "content-type": "application/json",
                    "authorization": header.request_header,
                    "x-forwarded-port": "443",
                },
                "requestContext": {"http": {"method": "POST"}, "requestId": "bench"},
                "body": raw.decode(),
                "isBase64Encoded": False,
            }
        )
    return events


def _public_key(keypair: object) -> rsa.RSAPublicKey:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    key = load_der_public_key(base64.b64decode(keypair.public_key))  # type: ignore[attr-defined]
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _call(handler: LkmHandler, event: dict[str, object]) -> None:
    response = handler(event)
    if response["statusCode"] != 200:
        raise RuntimeError(f"bench decrypt failed: {response['statusCode']} {response['body']}")


def _per_call(contenders: list[tuple[Callable[[object], object], list[object]]]) -> list[float]:
    """CPU seconds per call, median; the contenders take turns item by item (see bench_unwrap)."""
    times: list[list[float]] = [[] for _ in contenders]
    for i in range(max(len(items) for _, items in contenders)):
        for (fn, items), spent in zip(contenders, times, strict=True):
            start = time.process_time()
            fn(items[i % len(items)])
            spent.append(time.process_time() - start)
    return [statistics.median(spent) for spent in times]


def _dummy_credentials() -> AbstractContextManager[None]:
    return environment(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_SESSION_TOKEN=None,
        AWS_PROFILE=None,
        AWS_ENDPOINT_URL=None,
    )
