"""The key table: conditional puts, one active KEK per org, optimistic versions."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.errors import ConfigurationError, ConflictError, NotFound
from kmsbridge.keys.records import KekRecord, OrgRecord
from kmsbridge.keys.table import KeyStore

ORG = "acme"
ARN = "arn:aws:kms:us-east-1:111122223333:key/k1"


def kek(kek_id: str, state: str = "active") -> KekRecord:
    return KekRecord(
        org=ORG,
        kek_id=kek_id,
        public_key=b"spki-" + kek_id.encode(),
        wrapped_private_key=b"blob-" + kek_id.encode(),
        kms_keys=(ARN,),
        state=state,
        created_at="2026-01-01T00:00:00Z",
        activated_at="2026-01-01T00:00:00Z" if state == "active" else None,
    )


@pytest.fixture
def store(aws: AwsClients) -> KeyStore:
    s = KeyStore(aws.client("dynamodb"), "keks-test")
    s.create_table()
    s.create_org(OrgRecord(ORG, (ARN,), 90, "a" * 64, "2026-01-01T00:00:00Z"), kek("a" * 64))
    return s


def test_org_and_first_kek_read_back(store: KeyStore) -> None:
    org, active = store.active_kek(ORG)
    assert org.active_kek == active.kek_id == "a" * 64
    assert active.public_key == b"spki-" + b"a" * 64
    assert [k.kek_id for k in store.list_keks(ORG)] == ["a" * 64]  # the org item is not a KEK
    assert [o.org for o in store.list_orgs()] == [ORG]


def test_an_org_is_created_once(store: KeyStore) -> None:
    with pytest.raises(ConflictError):
        store.create_org(OrgRecord(ORG, (ARN,), 90, "b" * 64, "x"), kek("b" * 64))
    assert store.list_keks(ORG)[0].kek_id == "a" * 64  # the failed transaction wrote nothing


def test_a_kek_item_is_never_overwritten(store: KeyStore) -> None:
    with pytest.raises(ConflictError):
        store.put_new_kek(replace(kek("a" * 64), wrapped_private_key=b"evil"))
    assert store.get_kek(ORG, "a" * 64).wrapped_private_key == b"blob-" + b"a" * 64


def test_activate_retires_the_previous_kek(store: KeyStore) -> None:
    org = store.get_org(ORG)
    updated = store.activate(org, kek("b" * 64), "2026-02-01T00:00:00Z")
    assert store.get_org(ORG) == updated
    old = store.get_kek(ORG, "a" * 64)
    assert (old.state, old.retired_at) == ("retired", "2026-02-01T00:00:00Z")
    assert store.active_kek(ORG)[1].kek_id == "b" * 64


def test_a_stale_org_version_loses(store: KeyStore) -> None:
    org = store.get_org(ORG)
    store.activate(org, kek("b" * 64), "t1")
    with pytest.raises(ConflictError):
        store.activate(org, kek("c" * 64), "t2")
    with pytest.raises(NotFound):
        store.get_kek(ORG, "c" * 64)


def test_concurrent_activations_leave_exactly_one_active(store: KeyStore) -> None:
    org = store.get_org(ORG)
    results: list[str] = []

    def rotate(kek_id: str) -> None:
        try:
            store.activate(org, kek(kek_id), "t")
            results.append("won")
        except ConflictError:
            results.append("lost")

    threads = [threading.Thread(target=rotate, args=(c * 64,)) for c in "bcdef"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost"] * 4 + ["won"]
    states = [k.state for k in store.list_keks(ORG)]
    assert states.count("active") == 1


def test_update_kek_is_conditional_on_version(store: KeyStore) -> None:
    record = store.get_kek(ORG, "a" * 64)
    updated = store.update_kek(record, wrapped_private_key=b"new", kms_keys=(ARN, ARN + "2"))
    assert store.get_kek(ORG, "a" * 64) == updated
    assert updated.version == record.version + 1
    with pytest.raises(ConflictError):
        store.update_kek(record, wrapped_private_key=b"stale")
    cleared = store.update_kek(updated, wrapped_private_key=None, state="destroyed")
    assert store.get_kek(ORG, "a" * 64).wrapped_private_key is None
    assert cleared.state == "destroyed"


def test_missing_things_are_not_found(store: KeyStore, aws: AwsClients) -> None:
    with pytest.raises(NotFound):
        store.get_org("nobody")
    with pytest.raises(NotFound):
        store.get_kek(ORG, "f" * 64)
    # A missing table is the operator's configuration, not a missing org: exit 2, named.
    with pytest.raises(ConfigurationError, match="'no-such-table' does not exist.*table create"):
        KeyStore(aws.client("dynamodb"), "no-such-table").get_org(ORG)


def test_creating_an_existing_table_says_so(store: KeyStore) -> None:
    from kmsbridge.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="already exists"):
        store.create_table()


def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session(region_name="us-east-1")
    store = KeyStore(session.client("dynamodb", endpoint_url="http://127.0.0.1:9"), "t")
    with pytest.raises(ConfigurationError, match="no AWS credentials"):
        store.get_org(ORG)
