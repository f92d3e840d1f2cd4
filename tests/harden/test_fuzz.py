"""Hardening 2, fuzzing the decryptor Lambda's handler with hypothesis.

The target is the runtime entry, ``LambdaHandler`` (what ``lambda/decryptor/handler.py``
exports), over in-process moto: a key table with two orgs, recordings in S3 and a
playback bucket, so events that pass validation reach DynamoDB, KMS and S3. Events are
drawn for every op: wrong types everywhere, huge and unicode fields, bad and
non-canonical base64, real headers of this org and of another org, damaged headers,
response keys of every shape, S3 sources that exist and that do not, and unknown fields.

Every response must be JSON of the contract: ``{"ok": true, ...}`` with exactly the op's
fields, or ``{"ok": false, "error": {code in DESIGN's list, message str, retryable
bool}}``. A data key is released only for a genuine header of the asking org, and is the
right one (opened with the caller's key when sealed); no response carries any other key
byte string (raw, hex or base64). Deterministic (derandomize) and bounded
(max_examples): 10,000 events in all.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsbridge.aws import AwsClients
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import parse_header
from kmsbridge.crypto.sealing import KEMS, EphemeralKey
from kmsbridge.errors import ERROR_CODES
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp, LambdaHandler
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import kek_data_key
from kmsbridge.services import Services, Settings
from tests.conftest import FIXED_NOW, World
from tests.harden import encrypt, flip, header_length, report, tally

OTHER = "globex"
OK_FIELDS = {
    "unwrap": ({"ok", "kek", "data_key"}, {"ok", "kek", "sealed_data_key"}),
    "decrypt": ({"ok", "url", "expires_in"},),
    "access-check": ({"ok", "org", "state", "kms_keys", "keks"},),
}
EXAMPLES = {"unwrap": 6500, "decrypt": 2000, "access-check": 500, "anything": 1000}


@dataclass
class Target:
    """The handler, what it may release, and every key byte string of the run."""

    handler: LambdaHandler
    org: str
    headers: dict[bytes, bytes]  # genuine header of ``org`` -> its data key
    others: list[bytes]  # genuine headers of another org
    released: dict[tuple[str, bytes], bytes]  # (org, genuine header) -> its data key
    sources: list[str]  # s3:// URLs of recordings (this org's and the other's)
    secrets: list[bytes] = field(repr=False, default_factory=list)
    keys: dict[str, EphemeralKey] = field(repr=False, default_factory=dict)
    outcomes: list[str] = field(default_factory=list)


@pytest.fixture
def target(world: World, aws: AwsClients) -> Target:
    kms: Any = world.kms_client
    other_arn = kms.create_key(Description="globex")["KeyMetadata"]["Arn"]
    _, other_kek = create_org(world.store, world.wrapper, OTHER, [other_arn], now=FIXED_NOW)
    other_public = KekPublicKey.from_der(other_kek.public_key)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="recordings")
    s3.create_bucket(Bucket="playback")
    headers, others, sources, released = {}, [], [], {}
    for i in range(3):
        mine = world.encrypt(b"call %d" % i, f"call-{i}")
        theirs = encrypt(other_public, OTHER, b"their call %d" % i, f"their-{i}")
        header = mine[: header_length(mine)]
        headers[header] = world.decryptor.unwrap(world.org, header).data_key
        others.append(theirs[: header_length(theirs)])
        released[(world.org, header)] = headers[header]
        released[(OTHER, others[-1])] = world.decryptor.unwrap(OTHER, others[-1]).data_key
        for name, blob in ((f"acme/{i}", mine), (f"globex/{i}", theirs)):
            s3.put_object(Bucket="recordings", Key=name, Body=blob)
            sources.append(f"s3://recordings/{name}")
    config = Settings(table=world.store.table, playback_bucket="playback")
    app = LambdaApp(Services(config, clients=aws, decryptor=world.decryptor))
    handler = LambdaHandler(build=lambda: app)
    result = Target(handler, world.org, headers, others, released=released, sources=sources)
    result.secrets = [*released.values(), *kek_private_keys(world, other_kek)]
    result.keys = {kem: EphemeralKey.generate(kem) for kem in KEMS}
    return result


def kek_private_keys(world: World, other_kek: Any) -> list[bytes]:
    """The PKCS#8 DER of both orgs' KEKs, as KMS unwraps them."""
    out = []
    for record in (world.store.get_kek(world.org, world.kek_id), other_kek):
        out.append(
            world.wrapper.unwrap(
                record.wrapped_private_key,
                org=record.org,
                kek_id=record.kek_id,
                kms_key_arns=record.kms_keys,
                registered=record.kms_keys,
            )
        )
    return out


# ---------------------------------------------------------------- strategies

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
HUGE = st.integers(min_value=1, max_value=200_000).map(lambda n: "A" * n)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def header_field(draw: st.DrawFn, t: Target) -> object:
    genuine = list(t.headers)
    choice = draw(st.integers(0, 9))
    if choice <= 2:
        return b64(draw(st.sampled_from(genuine)))
    if choice == 3:
        return b64(draw(st.sampled_from(t.others)))  # a valid header of another org
    if choice == 4:
        h = draw(st.sampled_from(genuine))
        at = draw(st.integers(0, len(h) - 1))
        return b64(flip(h, at, draw(st.integers(1, 255))))
    if choice == 5:
        h = draw(st.sampled_from(genuine + t.others))
        return b64(h[: draw(st.integers(0, len(h) - 1))] + draw(st.binary(max_size=20)))
    if choice == 6:
        return b64(draw(st.binary(max_size=600)))
    if choice == 7:  # bad base64: wrong alphabet, no padding, whitespace, unicode
        h = b64(draw(st.sampled_from(genuine)))
        return draw(
            st.sampled_from([h.rstrip("="), h + "\n", h.replace("+", "-"), " " + h, h + "é"])
        )
    if choice == 8:
        return draw(st.one_of(HUGE, st.text(max_size=64)))
    return draw(JUNK)


@st.composite
def response_key(draw: st.DrawFn, t: Target) -> object:
    choice = draw(st.integers(0, 5))
    if choice <= 1:
        key = t.keys[draw(st.sampled_from(KEMS))]
        return {"kem": key.kem, "public_key": b64(key.public_bytes)}
    if choice == 2:
        kem = draw(st.one_of(st.sampled_from(KEMS), st.text(max_size=12), JUNK))
        return {"kem": kem, "public_key": b64(draw(st.binary(max_size=1300)))}
    if choice == 3:
        return {"kem": draw(st.sampled_from(KEMS)), "public_key": draw(JUNK)}
    if choice == 4:
        return draw(st.dictionaries(st.text(max_size=12), JUNK, max_size=3))
    return draw(JUNK)


@st.composite
def org_field(draw: st.DrawFn, t: Target) -> object:
    choice = draw(st.integers(0, 9))
    if choice <= 4:  # mostly an org that exists, so events get past validation
        return draw(st.sampled_from([t.org, t.org, OTHER]))
    if choice == 5:
        return draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-_", min_size=1, max_size=64))
    if choice == 6:
        return draw(st.text(max_size=70))
    if choice == 7:
        return draw(HUGE)
    return draw(JUNK)


@st.composite
def with_extras(draw: st.DrawFn, event: dict[str, object], t: Target) -> dict[str, object]:
    for name in list(event):
        if draw(st.integers(0, 39)) == 0:
            del event[name]  # a missing field
    if draw(st.integers(0, 19)) == 0:
        event[draw(st.text(max_size=10))] = draw(JUNK)  # an unknown field
    return event


@st.composite
def unwrap_events(draw: st.DrawFn, t: Target) -> object:
    event: dict[str, object] = {
        "op": "unwrap",
        "org": draw(org_field(t)),
        "header": draw(header_field(t)),
    }
    if draw(st.booleans()):
        event["response_key"] = draw(response_key(t))
    return draw(with_extras(event, t))


@st.composite
def decrypt_events(draw: st.DrawFn, t: Target) -> object:
    choice = draw(st.integers(0, 5))
    source = draw(
        st.sampled_from(t.sources)
        if choice <= 1
        else st.sampled_from(["s3://recordings/missing", "s3://nobucket/x", "s3://A/b"])
        if choice == 2
        else st.text(max_size=40).map(lambda s: "s3://recordings/" + s)
        if choice == 3
        else st.text(max_size=40)
        if choice == 4
        else JUNK
    )
    event: dict[str, object] = {"op": "decrypt", "org": draw(org_field(t)), "source": source}
    if draw(st.booleans()):
        event["expires_in"] = draw(st.one_of(st.integers(-10, 5000), st.integers(60, 3600), JUNK))
    return draw(with_extras(event, t))


@st.composite
def access_events(draw: st.DrawFn, t: Target) -> object:
    return draw(with_extras({"op": "access-check", "org": draw(org_field(t))}, t))


@st.composite
def any_events(draw: st.DrawFn, t: Target) -> object:
    op = st.one_of(st.sampled_from(["unwrap", "decrypt", "access-check", "UNWRAP", ""]), JUNK)
    return draw(
        st.one_of(
            JUNK,
            st.lists(JUNK, max_size=3),
            st.dictionaries(st.sampled_from(["op", "org", "header", "source"]), JUNK),
            st.fixed_dictionaries({"op": op, "org": org_field(t)}),
        )
    )


# ---------------------------------------------------------------- the oracle


def check(t: Target, event: object, response: object) -> None:
    text = json.dumps(response, allow_nan=False)  # JSON, with nothing JSON cannot carry
    assert json.loads(text) == response
    assert isinstance(response, dict) and isinstance(response.get("ok"), bool)
    if response["ok"]:
        assert isinstance(event, dict)
        assert set(response) in [set(f) for f in OK_FIELDS[event["op"]]], response
        check_release(t, event, response)
        t.outcomes.append(f"ok:{event['op']}")
    else:
        error = response["error"]
        assert set(response) == {"ok", "error"} and set(error) == {"code", "message", "retryable"}
        assert error["code"] in ERROR_CODES and isinstance(error["message"], str)
        assert error["retryable"] is (error["code"] == "KMS_UNAVAILABLE")
        t.outcomes.append(error["code"])
    for secret in t.secrets:  # only check_release may have found the released key
        released = base64.b64decode(response.get("data_key", "")) if response["ok"] else b""
        if secret != released:
            for form in (secret, secret.hex(), b64(secret)):
                needle = form if isinstance(form, str) else form.decode("latin-1")
                assert needle not in text


def check_release(t: Target, event: dict[str, Any], response: dict[str, Any]) -> None:
    """A key only for a genuine header of the asking org, and the right one."""
    if event["op"] != "unwrap":
        return
    org, header = event["org"], base64.b64decode(event["header"])
    assert (org, header) in t.released, "a data key for a header not genuine for that org"
    kek_id = kek_data_key(parse_header(io.BytesIO(header).read))[0]
    assert response["kek"] == kek_id
    if "data_key" in response:
        assert event.get("response_key") is None  # JSON null: no response key
        assert base64.b64decode(response["data_key"]) == t.released[(org, header)]
        return
    key = t.keys[event["response_key"]["kem"]]
    assert event["response_key"]["public_key"] == b64(key.public_bytes)
    message_id = parse_header(io.BytesIO(header).read).message_id_hex
    opened = key.open(
        base64.b64decode(response["sealed_data_key"]), org=org, kek_id=kek_id, message_id=message_id
    )
    assert opened == t.released[(org, header)]


def fuzz(strategy: Any, examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )(given(data=st.data())(strategy))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_every_event_gets_a_contract_answer_and_no_stray_key(
    target: Target, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make = {
        "unwrap": unwrap_events,
        "decrypt": decrypt_events,
        "access-check": access_events,
        "anything": any_events,
    }[kind]

    def run(data: st.DataObject) -> None:
        event = data.draw(make(target))
        check(target, event, target.handler(event))

    fuzz(run, EXAMPLES[kind])()
    capsys.readouterr()  # the handler's metric lines: checked by the Lambda suites
    figures = tally(target.outcomes)
    report(f"fuzz/{kind}", {"events": len(target.outcomes), **figures})
    assert len(target.outcomes) >= EXAMPLES[kind]
