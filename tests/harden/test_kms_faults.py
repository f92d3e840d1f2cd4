"""Hardening 5, KMS faults: throttled, slow and stalled KMS never yield a wrong key or a hang.

The decryptor runs with no cache (max age 0), so every unwrap asks KMS. Faults:
- a seeded 30% of KMS requests answered 400 ThrottlingException by a botocore
  ``before-send.kms`` hook (in-process moto), without retries and with botocore's
  adaptive retries;
- through a TCP proxy in front of moto's server, a seeded 30% of KMS responses held
  back past the read timeout (stalled) and 30% delayed: botocore's own timeouts end them.
Every answer is the right data key (compared with a fault-free run) or KMS_UNAVAILABLE
marked retryable. Each unwrap runs in a thread joined with a generous bound: a hang
detector derived from the configured timeouts, not a performance assertion.

botocore's adaptive retry mode (AwsSettings) also rate-limits a client once it has been
throttled: the next request waits for a token, up to ~2 s (floor 0.5 requests/s), so 200
unwraps at 30% throttling on one client take ~90 s. That is documented botocore
behaviour, bounded per request, and the bound allows for it. To stay fast, the
no-retry run uses a fresh client per unwrap (a cold container each time) and the
retrying run does 10 unwraps on one client.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import KmsBridgeError
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import make_kek
from tests.conftest import FIXED_NOW, REGION, World
from tests.harden import encrypt, header_length, report, tally
from tests.harden.proxy import fault_proxy

RATE = 0.3


@dataclass(frozen=True)
class Case:
    org: str
    header: bytes
    data_key: bytes  # what a fault-free decryptor released for it


@pytest.fixture
def cases(request: pytest.FixtureRequest) -> list[Case]:
    """Two recordings under each of two KEKs, with their true data keys."""
    world: World = request.getfixturevalue(request.param)
    kek = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.put_new_kek(kek)
    publics = [world.public_key, KekPublicKey.from_der(kek.public_key)]
    out = []
    for i in range(4):
        recording = encrypt(publics[i % 2], world.org, b"call %d" % i, f"call-{i}")
        header = recording[: header_length(recording)]
        out.append(Case(world.org, header, world.decryptor.unwrap(world.org, header).data_key))
    return out


def bounded(fn: Callable[[], bytes], bound: float) -> bytes | KmsBridgeError:
    """Run ``fn`` in a thread; it must finish within ``bound`` seconds (hang detector)."""
    result: list[bytes | KmsBridgeError] = []

    def run() -> None:
        try:
            result.append(fn())
        except KmsBridgeError as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"an unwrap did not finish within {bound} s"
    return result[0]


def judge(case: Case, outcome: bytes | KmsBridgeError) -> str:
    """ "ok" only for the right key; the only error allowed is a retryable KMS_UNAVAILABLE."""
    if isinstance(outcome, KmsBridgeError):
        assert (outcome.code, outcome.retryable) == ("KMS_UNAVAILABLE", True), outcome.to_dict()
        return outcome.code
    assert outcome == case.data_key
    return "ok"


def uncached(
    world: World, settings: AwsSettings, session: boto3.Session | None = None
) -> tuple[Decryptor, KekWrapper, AwsClients]:
    clients = AwsClients(settings, _session=session)
    wrapper = KekWrapper(clients)
    store = KeyStore(world.store.client, world.store.table)
    return Decryptor(store, wrapper, max_age=0, now=world.clock), wrapper, clients


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def throttle(rng: random.Random, counts: dict[str, int]) -> Callable[..., AWSResponse | None]:
    """A before-send hook answering a seeded RATE of KMS requests with ThrottlingException."""

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        counts["requests"] += 1
        if rng.random() >= RATE:
            return None
        counts["throttled"] += 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 400, headers, _Body(body.encode()))

    return hook


@pytest.mark.parametrize("cases", ["world"], indirect=True)
@pytest.mark.parametrize(("attempts", "unwraps", "per_client"), [(1, 100, 1), (2, 12, 12)])
def test_throttling_gives_the_right_key_or_a_retryable_error(
    world: World, cases: list[Case], attempts: int, unwraps: int, per_client: int
) -> None:
    settings = AwsSettings(region=REGION, max_attempts=attempts, connect_timeout=1, read_timeout=1)
    session = boto3.Session(region_name=REGION)
    rng, counts = random.Random(5), {"requests": 0, "throttled": 0}
    # Per attempt: the timeouts, a token of the adaptive limiter at its floor (0.5/s) and
    # botocore's largest throttling backoff; doubled.
    bound = 2 * sum(1 + 1 + 2 + min(20, 2**i) for i in range(attempts))
    outcomes = []
    for i in range(unwraps):
        if i % per_client == 0:
            decryptor, _, clients = uncached(world, settings, session)
            clients.client("kms").meta.events.register("before-send.kms", throttle(rng, counts))
        case = cases[i % len(cases)]
        outcomes.append(judge(case, bounded(lambda c=case: decryptor(c.org, c.header), bound)))
    figures = tally(outcomes)
    report(f"kms-faults/throttle/attempts={attempts}", {"unwraps": unwraps, **counts, **figures})
    assert figures.get("ok", 0) > 0 and counts["throttled"] > 0
    if attempts == 1:  # no retries: exactly the throttled requests failed
        assert figures.get("KMS_UNAVAILABLE", 0) == counts["throttled"]
        assert counts["requests"] == unwraps
    else:  # some throttled requests were retried into answers
        assert counts["requests"] > unwraps
        assert figures.get("KMS_UNAVAILABLE", 0) < counts["throttled"]


@pytest.mark.server
@pytest.mark.parametrize("cases", ["server_world"], indirect=True)
def test_stalled_and_slow_kms_ends_within_the_timeouts(
    server_world: World, moto_server: str, cases: list[Case]
) -> None:
    rng = random.Random(6)
    drawn: dict[str, int] = {"stall": 0, "slow": 0, "fast": 0}

    def policy() -> float | None:
        roll = rng.random()
        kind = "stall" if roll < RATE else "slow" if roll < 2 * RATE else "fast"
        drawn[kind] += 1
        return {"stall": None, "slow": 0.05, "fast": 0.0}[kind]

    with fault_proxy(moto_server, policy) as proxy:
        settings = AwsSettings(
            region=REGION,
            endpoint_url=proxy,
            max_attempts=2,
            connect_timeout=0.5,
            read_timeout=0.25,
        )
        decryptor, _, _ = uncached(server_world, settings)
        # Bound: two attempts of connect + read timeouts and one backoff, times five.
        bound = 5 * (2 * (0.5 + 0.25) + 1.0)
        outcomes = [
            judge(c, bounded(lambda c=c: decryptor(c.org, c.header), bound)) for c in cases * 5
        ]
    figures = tally(outcomes)
    report("kms-faults/stall", {"unwraps": len(outcomes), **drawn, **figures})
    assert drawn["stall"] > 0 and figures.get("ok", 0) > 0
