"""Certified public keys: bundles are PEM chains that openssl verifies; encryptors refuse
anything that does not check out against the CA they pinned, and write nothing.

Each attack of issue 16 is tried: a bundle with another public key, an edited org, a
look-alike CA, an expired bundle, another org's genuine bundle, an unpinned CA; a key-table
item with an attacker's public key; and the migration of KEKs made before the CA.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kmsbridge.aws import AwsClients
from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto.certificates import fingerprint, pem_chain
from kmsbridge.crypto.kek import generate_kek
from kmsbridge.crypto.trust import TrustAnchors
from kmsbridge.devtools.forgery import look_alike_bundle
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.keys.bundle import read_bundle, write_bundle
from kmsbridge.keys.ca import KmsSigner
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore, kek_to_item
from kmsbridge.lifecycle.certification import issue_missing
from kmsbridge.lifecycle.publishing import bundle_for
from kmsbridge.lifecycle.rotation import create_org, public_key_for_encryption, rotate
from tests.conftest import FIXED_NOW, World, pin_platform_ca, platform_certifier

DAY = timedelta(days=1)


def test_a_bundle_is_good_until_not_after_and_refused_from_then_on(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.pem"
    bundle = bundle_for(world.store, world.org, now=FIXED_NOW)
    assert (bundle.kek_id, bundle.not_after) == (world.kek_id, iso(FIXED_NOW + 90 * DAY))
    write_bundle(bundle.pem, path)
    last = FIXED_NOW + 90 * DAY - timedelta(seconds=1)
    assert read_bundle(path, world.org, trust=world.trust, now=last).kek_id == world.kek_id
    with pytest.raises(InvalidRequest, match="expired on"):
        read_bundle(path, world.org, trust=world.trust, now=FIXED_NOW + 90 * DAY)


def test_openssl_verifies_the_bundle_with_no_kmsbridge(world: World, tmp_path: Path) -> None:
    write_bundle(bundle_for(world.store, world.org, now=FIXED_NOW).pem, tmp_path / "bundle.pem")
    (tmp_path / "ca.pem").write_bytes(pem_chain([world.certifier.ca.certificate]))
    at = str(int((FIXED_NOW + DAY).timestamp()))
    ok = subprocess.run(
        ["openssl", "verify", "-attime", at, "-CAfile", tmp_path / "ca.pem",
         "-untrusted", tmp_path / "bundle.pem", tmp_path / "bundle.pem"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stderr


def test_rotation_issues_a_new_certificate_and_a_new_bundle(world: World) -> None:
    done = rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 80 * DAY, certifier=world.certifier
    )
    new = world.store.get_kek(world.org, done.active_kek)
    cert = x509.load_der_x509_certificate(new.certificate or b"")
    assert cert.not_valid_before_utc == FIXED_NOW + 80 * DAY
    assert cert.not_valid_after_utc == FIXED_NOW + 170 * DAY
    bundle = bundle_for(world.store, world.org, now=FIXED_NOW + 81 * DAY)
    assert (bundle.kek_id, bundle.not_after) == (done.active_kek, iso(FIXED_NOW + 170 * DAY))
    old = world.store.get_kek(world.org, world.kek_id)
    assert old.certificate is not None  # the retired KEK keeps its own


def test_rewrap_keeps_the_certificate(world: World) -> None:
    from kmsbridge.lifecycle.rewrap import change_org_kms_keys

    before = world.store.get_kek(world.org, world.kek_id).certificate
    new_key = world.kms_client.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    change_org_kms_keys(world.store, world.wrapper, world.org, [new_key], set_by="test")
    assert world.store.get_kek(world.org, world.kek_id).certificate == before
    public = public_key_for_encryption(world.store, world.org, trust=world.trust, now=FIXED_NOW)
    assert public.kek_id == world.kek_id


# ---------------------------------------------------------------- the key table is written


def test_an_attacker_public_key_in_the_table_is_refused(world: World) -> None:
    """Someone who can write the table swaps the active KEK's public key (and its id)."""
    _, attacker = generate_kek()
    genuine = world.store.get_kek(world.org, world.kek_id)
    for certificate in (None, genuine.certificate):
        forged = replace(
            genuine, kek_id=attacker.kek_id, public_key=attacker.spki_der, certificate=certificate
        )
        _put_active(world, forged)
        with pytest.raises(IntegrityError) as refused:
            public_key_for_encryption(world.store, world.org, trust=world.trust, now=FIXED_NOW)
        assert "no certificate" in refused.value.message or "another public key" in (
            refused.value.message
        )


def test_a_rewritten_ca_item_does_not_move_the_pin(world: World) -> None:
    """The attacker also writes a certificate from their own CA, and their CA into the table."""
    forged_chain = x509.load_pem_x509_certificates(look_alike_bundle(world.org))
    forged_kek, forged_ca = forged_chain
    genuine = world.store.get_kek(world.org, world.kek_id)
    forged = replace(
        genuine,
        kek_id=forged_kek.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest.hex(),
        public_key=forged_kek.public_key().public_bytes(
            Encoding.DER,
            __import__(
                "cryptography"
            ).hazmat.primitives.serialization.PublicFormat.SubjectPublicKeyInfo,
        ),
        certificate=forged_kek.public_bytes(Encoding.DER),
    )
    _put_active(world, forged)
    world.store.client.update_item(
        TableName=world.store.table,
        Key={"org": {"S": "#platform"}, "kek": {"S": "#ca"}},
        UpdateExpression="SET certificate = :c",
        ExpressionAttributeValues={":c": {"B": forged_ca.public_bytes(Encoding.DER)}},
    )
    with pytest.raises(IntegrityError, match="does not chain up to a pinned CA"):
        public_key_for_encryption(world.store, world.org, trust=world.trust, now=FIXED_NOW)


def _put_active(world: World, record: Any) -> None:
    world.store.client.put_item(TableName=world.store.table, Item=kek_to_item(record))
    org = world.store.get_org(world.org)
    world.store.client.update_item(
        TableName=world.store.table,
        Key={"org": {"S": world.org}, "kek": {"S": "#org"}},
        UpdateExpression="SET active_kek = :k",
        ExpressionAttributeValues={":k": {"S": record.kek_id}},
    )
    assert world.store.get_org(world.org).version == org.version


# ---------------------------------------------------------------- the CLI refuses bundles


@pytest.fixture
def cli_org(
    aws: AwsClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> dict[str, Any]:
    """Org acme through the CLI, its bundle written, the platform CA pinned (env)."""
    assert main(["table", "create"]) == 0
    store = KeyStore(aws.client("dynamodb"), "kmsbridge-keks")
    ca_file = pin_platform_ca(store, aws.client("kms"), tmp_path, monkeypatch)
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    assert main(["org", "add", "acme", "--kms-key", arn]) == 0
    assert main(["org", "add", "globex", "--kms-key", arn]) == 0
    assert main(["keys", "public", "acme", "-o", str(tmp_path / "acme.pem")]) == 0
    assert main(["keys", "public", "globex", "-o", str(tmp_path / "globex.pem")]) == 0
    (tmp_path / "in.wav").write_bytes(b"call audio")
    capsys.readouterr()
    return {"store": store, "ca": ca_file, "arn": arn}


def encrypt_with(tmp_path: Path, bundle: Path, *extra: str) -> list[str]:
    return [
        "encrypt", "--org", "acme", "--recording-id", "r1", "--public-keys", str(bundle),
        *extra, str(tmp_path / "in.wav"), str(tmp_path / "out.enc"),
    ]  # fmt: skip


def edited(tmp_path: Path, name: str, change: Any) -> Path:
    """The acme bundle with its KEK certificate's DER changed by ``change``."""
    chain = x509.load_pem_x509_certificates((tmp_path / "acme.pem").read_bytes())
    der = bytearray(chain[0].public_bytes(Encoding.DER))
    change(der)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bytes(der))
    path = tmp_path / name
    path.write_bytes(pem + b"-----END CERTIFICATE-----\n" + pem_chain(chain[1:]))
    return path


def _edit_org(der: bytearray) -> None:
    at = der.index(b"acme")
    der[at : at + 4] = b"acmf"


def _another_key(der: bytearray) -> None:
    at = len(der) // 2  # inside the RSA modulus
    der[at] ^= 0x01


@pytest.mark.parametrize(
    ("bundle", "code", "message"),
    [
        ("look-alike", "INTEGRITY", "does not chain up to a pinned CA"),
        ("edited org", "INTEGRITY", "does not chain up to a pinned CA"),
        ("another key", "INTEGRITY", "does not chain up to a pinned CA"),
        ("other org", "INTEGRITY", "is for org ['globex'], not 'acme'"),
        ("json v1", "INVALID_REQUEST", "version-1 JSON bundle"),
        ("garbage", "INTEGRITY", "not X.509 certificates in PEM"),
        ("missing", "INVALID_REQUEST", "cannot read the public-key bundle"),
    ],
)
def test_encrypt_refuses_a_bad_bundle_and_writes_nothing(
    cli_org: dict[str, Any], tmp_path: Path, capsys: Any, bundle: str, code: str, message: str
) -> None:
    paths = {
        "look-alike": tmp_path / "look-alike.pem",
        "edited org": edited(tmp_path, "edited-org.pem", _edit_org),
        "another key": edited(tmp_path, "another-key.pem", _another_key),
        "other org": tmp_path / "globex.pem",
        "json v1": tmp_path / "old.json",
        "garbage": tmp_path / "garbage.pem",
        "missing": tmp_path / "nothing.pem",
    }
    paths["look-alike"].write_bytes(look_alike_bundle("acme"))
    paths["json v1"].write_text(json.dumps({"kmsbridge_bundle": 1, "org": "acme"}))
    paths["garbage"].write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert main(encrypt_with(tmp_path, paths[bundle])) == exit_codes.BY_ERROR_CODE[code]
    err = capsys.readouterr().err
    assert err.startswith(f"error: {code}: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.enc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.enc")]


def test_encrypt_refuses_an_unpinned_ca_and_nothing_pinned(
    cli_org: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(pem_chain(x509.load_pem_x509_certificates(look_alike_bundle("x"))[1:]))
    bundle = tmp_path / "acme.pem"
    assert main(encrypt_with(tmp_path, bundle, "--ca", str(other))) == exit_codes.INTEGRITY
    monkeypatch.delenv("KMSBRIDGE_CA_FILE")
    assert main(encrypt_with(tmp_path, bundle)) == exit_codes.USAGE
    assert "no CA is pinned" in capsys.readouterr().err
    assert not (tmp_path / "out.enc").exists()
    pinned = x509.load_pem_x509_certificates(cli_org["ca"].read_bytes())[0]
    assert main(encrypt_with(tmp_path, bundle, "--ca-fingerprint", fingerprint(pinned))) == 0


def test_an_expired_bundle_is_refused_at_the_cli(
    aws: AwsClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    store = KeyStore(aws.client("dynamodb"), "kmsbridge-keks")
    store.create_table()
    pin_platform_ca(store, aws.client("kms"), tmp_path, monkeypatch)
    certifier = platform_certifier(store, aws.client("kms"))
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    long_ago = utcnow() - 31 * DAY
    create_org(
        store, KekWrapper(aws), "acme", [arn], cryptoperiod_days=30, now=long_ago,
        certifier=certifier,
    )  # fmt: skip
    old = bundle_for(store, "acme", now=long_ago + DAY)
    write_bundle(old.pem, tmp_path / "acme.pem")
    (tmp_path / "in.wav").write_bytes(b"call audio")
    capsys.readouterr()
    assert main(encrypt_with(tmp_path, tmp_path / "acme.pem")) == exit_codes.USAGE
    assert "expired on" in capsys.readouterr().err
    assert not (tmp_path / "out.enc").exists()
    # The online path refuses too, unless rotating first (which certifies the new KEK).
    online = ["encrypt", "--org", "acme", "--recording-id", "r1"]
    files = [str(tmp_path / "in.wav"), str(tmp_path / "out.enc")]
    assert main([*online, *files]) == exit_codes.USAGE
    assert main([*online, "--rotate-if-expired", *files]) == 0
    assert main(["keys", "public", "acme", "-o", str(tmp_path / "acme.pem"), "--force"]) == 0
    assert (
        main([*online, "--public-keys", str(tmp_path / "acme.pem"), files[0], files[1] + "2"]) == 0
    )


def test_the_offline_encrypt_opens_no_socket(
    cli_org: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the offline encrypt tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert main(encrypt_with(tmp_path, tmp_path / "acme.pem")) == 0
    assert (tmp_path / "out.enc").stat().st_size > 0


# ---------------------------------------------------------------- migration


def test_ca_issue_certifies_old_keks_idempotently(
    aws: AwsClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    store = KeyStore(aws.client("dynamodb"), "kmsbridge-keks")
    store.create_table()
    wrapper = KekWrapper(aws)
    arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    now = utcnow()
    for org in ("acme", "globex"):  # KEKs made before there was a CA
        create_org(store, wrapper, org, [arn], now=now - 10 * DAY)
    rotate(store, wrapper, "acme", now=now - DAY)
    pin_platform_ca(store, aws.client("kms"), tmp_path, monkeypatch)
    files = [str(tmp_path / "in.wav"), str(tmp_path / "out.enc")]
    (tmp_path / "in.wav").write_bytes(b"x")
    online = ["encrypt", "--org", "acme", "--recording-id", "r1", *files]
    capsys.readouterr()
    assert main(online) == exit_codes.INTEGRITY
    assert "has no certificate" in capsys.readouterr().err
    assert main(["--output", "json", "ca", "issue", "--all-orgs"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (len(first["issued"]), first["skipped"], first["failed"]) == (3, 0, [])
    assert main(["--output", "json", "ca", "issue", "--all-orgs"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["issued"], again["skipped"]) == ([], 3)
    assert main(online) == 0
    retired = next(k for k in store.list_keks("acme") if k.state == "retired")
    cert = x509.load_der_x509_certificate(retired.certificate or b"")
    assert cert.not_valid_after_utc.replace(microsecond=0) == (now - DAY).replace(microsecond=0)


def test_issue_missing_resumes_after_a_failure(world: World) -> None:
    """A KEK whose certificate could not be issued is left for the next run."""
    second = rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY)  # no certifier
    missing = world.certifier.ca.kms_key.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    client = _MissingKeyClient(world.kms_client, missing)
    broken = replace(world.certifier, signer=KmsSigner(client, world.certifier.ca.kms_key))
    orgs = [world.store.get_org(world.org)]
    report = issue_missing(world.store, broken, orgs)
    assert report.issued == () and [f[1] for f in report.failed] == [second.active_kek]
    report = issue_missing(world.store, world.certifier, orgs)
    assert report.issued == ((world.org, second.active_kek),) and report.skipped == 1


class _MissingKeyClient:
    """Sends the CA's Sign calls to a key id that does not exist (KMS answers NotFound)."""

    def __init__(self, client: Any, arn: str) -> None:
        self.client, self.arn = client, arn

    def sign(self, **params: Any) -> Any:
        return self.client.sign(**(params | {"KeyId": self.arn}))

    def get_public_key(self, **params: Any) -> Any:
        return self.client.get_public_key(**(params | {"KeyId": self.arn}))


def test_trust_anchors_type_is_what_the_cli_builds(cli_org: dict[str, Any]) -> None:
    from kmsbridge.services import Services

    trust = Services().trust_for("acme")
    assert isinstance(trust, TrustAnchors) and len(trust.platform) == 1


def test_verifying_never_loads_the_asn1_library(tmp_path: Path) -> None:
    """pyasn1 is for issuing; an offline encryptor's start-up does not pay for it."""
    probe = (
        "import sys\n"
        "import kmsbridge.cli.crypt, kmsbridge.keys.bundle, kmsbridge.lifecycle.certification\n"
        "print(sorted(m for m in sys.modules if m.startswith('pyasn1')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_signing_key_is_the_configured_one_not_the_tables(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA item rewritten to name another KMS key signs nothing (KMSBRIDGE_CA_KEY_ARN)."""
    from kmsbridge.errors import ConfigurationError
    from kmsbridge.services import Services, Settings

    settings = Settings.from_env(table=world.store.table)
    assert Services(
        replace(settings, ca_key_arn=world.certifier.ca.kms_key), clients=world.clients
    ).certifier
    other = world.kms_client.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")  # type: ignore[attr-defined]
    wrong = replace(settings, ca_key_arn=other["KeyMetadata"]["Arn"])
    with pytest.raises(ConfigurationError, match="not KMSBRIDGE_CA_KEY_ARN"):
        Services(wrong, clients=world.clients).certifier
