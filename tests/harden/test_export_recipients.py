"""Issue 15 finding 3: exports go only to the org's registered recipients, as the job says.

Reproduced before the fix: a hand-written SQS message exported any org's recordings to any
certificate, and could overwrite another job's results and manifest. Now recipients are
registered per org (who and when, audited); a job starts only for a registered recipient;
every message is checked against its job record and takes the recipient from the registry
before any work; results and the manifest are never overwritten. One hostile recording in
a batch fails alone (finding 5).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pysequoia
import pytest

from kmsbridge.cli.main import main
from kmsbridge.crypto import cms
from kmsbridge.errors import InvalidRequest, NotFound
from kmsbridge.export.archive import certificate_target, export_archive
from kmsbridge.export.job import JobRef, process_export_batch, start_export_job
from kmsbridge.export.recipients import (
    add_recipient,
    list_recipients,
    register_pgp_recipient,
    remove_recipient,
)
from kmsbridge.legacy.import_key import import_key_pair
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import Identity, make_identity, register, rsa_key


class Site:
    """Recordings in S3, an export bucket, a queue, a registered customer recipient."""

    def __init__(self, world: World, tmp_path: Path) -> None:
        self.world = world
        self.s3: Any = world.clients.client("s3")
        self.sqs: Any = world.clients.client("sqs")
        for bucket in ("recordings", "exports"):
            self.s3.create_bucket(Bucket=bucket)
        self.queue = self.sqs.create_queue(QueueName="jobs")["QueueUrl"]
        self.keys = [f"2026/11/call-{n}.enc" for n in range(4)]
        for n, key in enumerate(self.keys):
            self.s3.put_object(Bucket="recordings", Key=key, Body=world.encrypt(b"x" * n, key))
        self.customer: Identity = make_identity("customer", rsa_key(10))
        self.attacker: Identity = make_identity("attacker", rsa_key(11))
        self.target = register(
            world.store, world.org, certificate_target(self.customer.cert_pem(), FIXED_NOW)
        )

    def start(self, target: Any = None, keys: list[str] | None = None) -> JobRef:
        return start_export_job(
            self.world.clients,
            store=self.world.store,
            org=self.world.org,
            source_bucket="recordings",
            keys=keys or self.keys,
            dest_bucket="exports",
            queue_url=self.queue,
            target=target or self.target,
            batch_size=2,
            now=FIXED_NOW,
        )

    def messages(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]

    def process(self, message: dict[str, Any]) -> dict[str, Any]:
        return process_export_batch(
            message, clients=self.world.clients, decryptor=self.world.decryptor, now=FIXED_NOW
        )

    def objects(self) -> dict[str, str]:
        listing = self.s3.list_objects_v2(Bucket="exports").get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listing}


@pytest.fixture
def site(world: World, tmp_path: Path) -> Site:
    return Site(world, tmp_path)


def attacker_der(site: Site) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return base64.b64encode(site.attacker.cert.public_bytes(Encoding.DER)).decode()


def test_a_job_for_an_unregistered_recipient_never_starts(site: Site) -> None:
    with pytest.raises(InvalidRequest, match="not a registered export recipient"):
        site.start(certificate_target(site.attacker.cert_pem(), FIXED_NOW))
    assert site.objects() == {} and site.messages() == []


@pytest.mark.parametrize(
    "forgery",
    ["attacker-certificate", "attacker-recipient-id", "other-keys", "other-org", "other-source"],
)
def test_a_hand_written_message_exports_nothing(site: Site, forgery: str) -> None:
    job = site.start()
    genuine = site.messages()[0]
    forged = dict(genuine)
    if forgery == "attacker-certificate":  # the old message format, with its own recipient
        del forged["recipient"]
        forged["certificate"] = attacker_der(site)
    elif forgery == "attacker-recipient-id":
        forged["recipient"] = "cert:" + "ab" * 32
    elif forgery == "other-keys":
        forged["keys"] = ["2026/11/call-3.enc", "2026/11/secret.enc"]
    elif forgery == "other-org":
        forged["org"] = "globex"
    else:
        forged["source_bucket"] = "someone-elses-recordings"
    before, calls = site.objects(), site.world.wrapper.kms_calls
    with pytest.raises(InvalidRequest):
        site.process(forged)
    assert site.objects() == before  # nothing written (job.json only)
    assert site.world.wrapper.kms_calls == calls  # no recording was decrypted
    assert list(before) == [job.prefix + "job.json"]


def test_results_and_manifest_are_never_overwritten(site: Site) -> None:
    job = site.start()
    first, second = site.messages()
    site.process(first)
    site.process(second)
    written = site.objects()
    assert job.prefix + "manifest.json" in written
    # A second job's message aimed at the first job's folder is refused outright.
    site.start(keys=site.keys[:2])
    other = next(m for m in site.messages() if m["job"] != job.job_id)
    with pytest.raises(InvalidRequest, match="does not match its job record"):
        site.process({**other, "job_prefix": job.prefix})
    # Redelivering a genuine message after its result vanished rewrites nothing that exists.
    site.s3.delete_object(Bucket="exports", Key=f"{job.prefix}results/batch-000001.json")
    del written[f"{job.prefix}results/batch-000001.json"]
    site.process(first)
    after = site.objects()
    assert {k: v for k, v in after.items() if k in written} == written


def test_a_removed_recipient_stops_the_queued_batches(site: Site) -> None:
    site.start()
    first, second = site.messages()
    site.process(first)
    remove_recipient(site.world.store, site.world.org, site.target.recipient_id, removed_by="op")
    before = site.objects()
    with pytest.raises(InvalidRequest, match="not a registered export recipient"):
        site.process(second)
    assert site.objects() == before


def test_a_zip_export_needs_a_registered_recipient(site: Site, tmp_path: Path) -> None:
    (tmp_path / "a.enc").write_bytes(site.world.encrypt(b"a call", "a"))
    with pytest.raises(InvalidRequest, match="not a registered export recipient"):
        export_archive(
            site.world.org,
            [tmp_path / "a.enc"],
            tmp_path / "out.zip",
            decryptor=site.world.decryptor,
            target=certificate_target(site.attacker.cert_pem(), FIXED_NOW),
        )
    assert not (tmp_path / "out.zip").exists()


def test_one_hostile_recording_fails_alone_in_a_batch(site: Site) -> None:
    """A PKCS#7 file nested past the parser's limit, for the org's imported key."""
    legacy = make_identity("legacy-recorder", rsa_key(4))
    import_key_pair(
        site.world.store,
        site.world.wrapper,
        site.world.org,
        certificate_pem=legacy.cert_pem(),
        private_key_pem=legacy.key_pem(),
        now=FIXED_NOW,
    )
    good = cms.encrypt_for(legacy.cert, b"an old call")
    head = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03\xa0\x80\x30\x80\x02\x01\x00"
    deep = head + b"\x31\x80" + b"\x30\x80" * 50_000  # RecursionError before the fix
    site.s3.put_object(Bucket="recordings", Key="old/deep.p7m", Body=deep)
    site.s3.put_object(Bucket="recordings", Key="old/good.p7m", Body=good)
    site.start(keys=["old/deep.p7m", "old/good.p7m"])
    (message,) = site.messages()
    result = site.process(message)
    by_source = {e["source"]: e for e in result["recordings"]}
    assert by_source["old/deep.p7m"]["error"]["code"] == "INTEGRITY"
    assert by_source["old/good.p7m"]["ok"]


def test_the_registry_commands_record_who_and_when(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    cert, _ = make_identity("customer", rsa_key(10)).write(tmp_path, "customer")
    tsk = pysequoia.Tsk.generate("Customer Archive <archive@example.com>")
    (tmp_path / "pub.asc").write_text(str(tsk.extract_certificate()))
    (tmp_path / "secret.asc").write_text(str(tsk))
    (tmp_path / "junk.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n")
    base = ["--output", "json", "export", "recipients"]
    with caplog.at_level(logging.INFO, logger="kmsbridge.audit"):
        for option, value in (("--cert", str(cert)), ("--pgp", str(tmp_path / "pub.asc"))):
            assert main([*base, "add", world.org, option, value]) == 0
        assert main([*base, "add", world.org, "--kms-key", world.key_arn]) == 0
    capsys.readouterr()
    assert main([*base, "list", world.org]) == 0
    listed = json.loads(capsys.readouterr().out)["recipients"]
    assert [r["kind"] for r in listed] == ["cert", "pgp", "kms"]
    assert all(r["added_by"] and r["added_at"] for r in listed)
    assert listed[1]["id"] == f"pgp:{tsk.extract_certificate().fingerprint.lower()}"
    audits = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    assert [a["op"] for a in audits] == ["export-recipient-add"] * 3
    for name in ("secret.asc", "junk.asc"):  # a secret key is never stored; junk is refused
        code = main(["export", "recipients", "add", world.org, "--pgp", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code != 0 and err.startswith("error: INVALID_REQUEST: ") and err.count("\n") == 1
        assert "Stack backtrace" not in err and "PRIVATE" not in err
    assert len(list_recipients(world.store, world.org)) == 3
    assert main(["export", "recipients", "remove", world.org, "--id", listed[2]["id"]]) == 0
    assert [r.kind for r in list_recipients(world.store, world.org)] == ["cert", "pgp"]
    with pytest.raises(NotFound):
        remove_recipient(world.store, world.org, listed[2]["id"], removed_by="op")


def test_register_pgp_recipient_is_the_hook_for_the_pgp_target(world: World) -> None:
    cert = pysequoia.Tsk.generate("Archive <a@example.com>").extract_certificate()
    recipient = register_pgp_recipient(str(cert).encode(), added_by="op", now=FIXED_NOW)
    assert recipient.material is not None and b"PRIVATE" not in recipient.material
    assert pysequoia.Cert.from_bytes(recipient.material).fingerprint == cert.fingerprint
    add_recipient(world.store, world.org, recipient)
    add_recipient(world.store, world.org, recipient)  # adding again changes nothing
    assert list_recipients(world.store, world.org) == (recipient,)
