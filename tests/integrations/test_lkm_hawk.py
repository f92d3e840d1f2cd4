"""Hawk verification against an independent client (mohawk) and Hawk's published example.

No AWS here: credentials are a dict, nonces in memory (the DynamoDB store has its own
tests against moto below).
"""

from __future__ import annotations

import time

import pytest
from mohawk import Sender
from mohawk.util import calculate_ts_mac

from kmsbridge.integrations.lkm.hawk import (
    Credential,
    HawkError,
    HawkRequest,
    HawkVerifier,
    mac,
    normalized_string,
    parse_authorization,
    payload_hash,
)
from kmsbridge.integrations.lkm.nonces import DynamoNonceStore, MemoryNonceStore

KEY = "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn"
CREDENTIAL = Credential("dh37fgj492je", "acme", KEY.encode())
URL = "https://lkm.example.com/key-management/v1/decrypt?decryptType=pkcs1"
BODY = b'{"keypairId": "x", "body": "AAAA"}'


def verifier(now: float | None = None, nonces: MemoryNonceStore | None = None) -> HawkVerifier:
    clock = (lambda: now) if now is not None else time.time
    lookup = {CREDENTIAL.id: CREDENTIAL}.get
    return HawkVerifier(lookup, nonces or MemoryNonceStore(60), skew=60, now=clock)


def signed(
    key: str = KEY,
    *,
    url: str = URL,
    method: str = "POST",
    body: bytes = BODY,
    hash_content: bool = True,
    ts: int | None = None,
    nonce: str | None = None,
) -> str:
    creds = {"id": CREDENTIAL.id, "key": key, "algorithm": "sha256"}
    content = {"content": body, "content_type": "application/json"} if hash_content else {}
    sender = Sender(
        creds,
        url,
        method,
        always_hash_content=hash_content,
        _timestamp=ts,
        nonce=nonce,
        **content,
    )
    return str(sender.request_header)


def request(header: str | None, **changes: object) -> HawkRequest:
    values: dict[str, object] = {
        "method": "POST",
        "resource": "/key-management/v1/decrypt?decryptType=pkcs1",
        "host": "lkm.example.com",
        "port": 443,
        "authorization": header,
        "content_type": "application/json; charset=utf-8",
        "body": BODY,
    }
    values.update(changes)
    return HawkRequest(**values)  # type: ignore[arg-type]


def test_the_hawk_specification_example_gives_its_published_mac() -> None:
    # Hawk README: GET http://example.com:8000/resource/1?b=1&a=2, ts 1353832234, nonce j4h3g2.
    attributes = {"ts": "1353832234", "nonce": "j4h3g2", "ext": "some-app-ext-data"}
    hawk = HawkRequest("GET", "/resource/1?b=1&a=2", "example.com", 8000, None)
    text = normalized_string(attributes, hawk)
    assert text == (
        b"hawk.1.header\n1353832234\nj4h3g2\nGET\n/resource/1?b=1&a=2\nexample.com\n8000\n\n"
        b"some-app-ext-data\n"
    )
    assert mac(KEY.encode(), text) == "6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE="


def test_a_mohawk_request_verifies_with_and_without_a_payload_hash() -> None:
    assert verifier().verify(request(signed())) == CREDENTIAL
    assert verifier().verify(request(signed(hash_content=False))) == CREDENTIAL
    assert "hash=" in signed() and "hash=" not in signed(hash_content=False)


def test_the_payload_hash_is_hawks() -> None:
    header = parse_authorization(signed())
    assert payload_hash("application/json", BODY) == header["hash"]


@pytest.mark.parametrize(
    "change",
    [
        {"method": "GET"},
        {"resource": "/key-management/v1/decrypt"},  # the query is signed
        {"resource": "/key-management/v1/decrypt?decryptType=oaep"},
        {"host": "other.example.com"},
        {"port": 8443},
    ],
)
def test_what_the_mac_covers_cannot_change(change: dict[str, object]) -> None:
    with pytest.raises(HawkError, match="bad MAC"):
        verifier().verify(request(signed(), **change))


def test_a_changed_body_fails_its_payload_hash() -> None:
    with pytest.raises(HawkError, match="payload hash"):
        verifier().verify(request(signed(), body=BODY.replace(b"AAAA", b"BBBB")))


def test_the_wrong_key_and_an_unknown_id_are_refused() -> None:
    with pytest.raises(HawkError, match="bad MAC"):
        verifier().verify(request(signed("another key entirely, same id")))
    header = signed().replace(CREDENTIAL.id, "unknown-id")
    with pytest.raises(HawkError, match="unknown Hawk id"):
        verifier().verify(request(header))


def test_a_stale_timestamp_is_refused_with_the_servers_time_maced() -> None:
    now = 1_800_000_000.0
    old = signed(ts=int(now) - 61)
    with pytest.raises(HawkError, match="stale") as caught:
        verifier(now).verify(request(old))
    challenge = caught.value.challenge
    tsm = calculate_ts_mac(int(now), {"id": CREDENTIAL.id, "key": KEY, "algorithm": "sha256"})
    tsm = tsm.decode() if isinstance(tsm, bytes) else tsm
    assert f'ts="{int(now)}"' in challenge and f'tsm="{tsm}"' in challenge
    future = signed(ts=int(now) + 61)
    with pytest.raises(HawkError, match="stale"):
        verifier(now).verify(request(future))
    assert verifier(now).verify(request(signed(ts=int(now) - 59))) == CREDENTIAL


def test_a_replayed_nonce_is_refused_but_a_bad_mac_does_not_burn_it() -> None:
    nonces = MemoryNonceStore(60)
    hawk = verifier(nonces=nonces)
    header = signed(nonce="n0nce1")
    forged = header.replace('mac="', 'mac="A')
    with pytest.raises(HawkError, match="bad MAC"):
        hawk.verify(request(forged))
    assert len(nonces) == 0
    assert hawk.verify(request(header)) == CREDENTIAL
    with pytest.raises(HawkError, match="replayed"):
        hawk.verify(request(header))
    with pytest.raises(HawkError, match="replayed"):  # same nonce, new timestamp: still refused
        hawk.verify(request(signed(nonce="n0nce1", ts=int(time.time()) + 1)))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        'Hawk id="dh37fgj492je", ts="1", nonce="n"',  # no mac
        'Hawk id="dh37fgj492je", id="dh37fgj492je", ts="1", nonce="n", mac="m"',
        'Hawk id="dh37fgj492je", ts="1", nonce="n", mac="m", evil="x"',
        'Hawk id="dh37fgj492je", ts="1", nonce="n", mac="m", app="a"',
        'Hawk id="dh37fgj492je", ts="-1", nonce="n", mac="m"',
        'Hawk id="dh37fgj492je", ts="1", nonce="n", mac="m\\"x"',
        'Hawk id="dh37fgj492je" ts="1" nonce="n" mac="m"',
        'Hawk id="short", ts="1", nonce="n", mac="m"',
        'Hawk id="dh37fgj492je", ts="1", nonce="' + "n" * 129 + '", mac="m"',
        "Hawk " + "x" * 5000,
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(HawkError):
        verifier().verify(request(header))


def test_a_full_memory_store_forgets_the_oldest_and_refuses_up_to_it() -> None:
    store = MemoryNonceStore(skew=60, max_entries=2)
    assert store.first_use("id", "a", 100, now=100)
    assert store.first_use("id", "b", 101, now=101)
    assert store.first_use("id", "c", 102, now=102)  # forgets "a" (ts 100): floor 100
    assert len(store) == 2
    assert not store.first_use("id", "a", 100, now=102)  # forgotten, but at the floor
    assert not store.first_use("id", "b", 101, now=102)  # remembered
    assert store.first_use("id", "d", 103, now=103)  # forgets "b": floor 101
    assert not store.first_use("id", "b", 101, now=103)
    assert store.first_use("id", "a", 190, now=200)  # the others expired (ts + 60 < now)
    assert len(store) == 1


@pytest.mark.usefixtures("aws")
def test_the_dynamodb_store_refuses_a_replay_from_another_container(aws: object) -> None:
    client = aws.client("dynamodb")  # type: ignore[attr-defined]
    first, second = (DynamoNonceStore(client, "lkm-nonces", 60) for _ in range(2))
    first.create_table()
    assert first.first_use("id", "n1", 1000, now=1000)
    assert not second.first_use("id", "n1", 1000, now=1001)
    assert second.first_use("id", "n2", 1000, now=1001)
    # The TTL deletes lazily: an expired item still in the table counts as absent.
    assert first.first_use("id", "n1", 1100, now=1062)
    item = client.get_item(TableName="lkm-nonces", Key={"nonce": {"S": _digest("id", "n1")}})
    assert int(item["Item"]["expires_at"]["N"]) == 1100 + 60 + 1


def _digest(credential_id: str, nonce: str) -> str:
    import hashlib

    return hashlib.sha256(f"{credential_id}\n{nonce}".encode()).hexdigest()
