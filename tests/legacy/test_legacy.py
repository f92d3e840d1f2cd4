"""Bring your own key and PKCS#7 playback, in process against mock_aws and the real openssl."""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from kmsbridge.crypto.trust import TrustAnchors
from kmsbridge.errors import AccessRevoked, IntegrityError, InvalidRequest, NotFound
from kmsbridge.legacy.certificates import check_for_encryption
from kmsbridge.legacy.import_key import ImportedKek, import_key_pair
from kmsbridge.legacy.playback import decrypt_archive, decrypt_cms_file, decrypt_cms_stream
from kmsbridge.lifecycle.rotation import public_key_for_encryption
from kmsbridge.recordings.codec import decrypt_stream
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import DAY, Identity, make_identity, openssl, rsa_key, smime_encrypt


def do_import(world: World, ident: Identity, **kw: object) -> ImportedKek:
    kw.setdefault("now", FIXED_NOW)
    return import_key_pair(
        world.store,
        world.wrapper,
        world.org,
        certificate_pem=ident.cert_pem(),
        private_key_pem=kw.pop("key_pem", None) or ident.key_pem(),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def customer_trust(world: World, ident: Identity) -> TrustAnchors:
    """The encryptor's pins: the platform CA, and the customer's certificate for this org."""
    return TrustAnchors(platform=world.trust.platform, customer={world.org: (ident.cert,)})


@pytest.fixture
def recorder() -> Identity:
    return make_identity("recorder-2019", rsa_key(0))


def recorder_files(tmp_path: Path, ident: Identity, data: bytes, cipher: str) -> Path:
    cert = tmp_path / "recorder.crt.pem"
    cert.write_bytes(ident.cert_pem())
    (tmp_path / "plain.bin").write_bytes(data)
    p7m = tmp_path / f"call{cipher}.p7m"
    smime_encrypt(tmp_path / "plain.bin", p7m, cert, cipher)
    return p7m


# ---------------------------------------------------------------- playback


@pytest.mark.parametrize(
    ("cipher", "size"),
    [("-aes-256-cbc", 300_001), ("-aes-128-cbc", 2 * 1024 * 1024 + 16), ("-aes-256-cbc", 0)],
)
def test_openssl_smime_files_decrypt_byte_for_byte(
    world: World, recorder: Identity, tmp_path: Path, cipher: str, size: int
) -> None:
    imported = do_import(world, recorder)
    data = os.urandom(size)
    p7m = recorder_files(tmp_path, recorder, data, cipher)
    info = decrypt_cms_file(p7m, tmp_path / "out.wav", org=world.org, decryptor=world.decryptor)
    assert (tmp_path / "out.wav").read_bytes() == data
    assert (info.plaintext_bytes, info.kek_id) == (size, imported.record.kek_id)


def test_ber_streamed_cms_with_key_id_and_oaep_decrypts(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    """``openssl cms -stream -keyid`` with OAEP: indefinite lengths, chunks, a key identifier."""
    do_import(world, recorder)
    data = os.urandom(100_000)
    (tmp_path / "plain").write_bytes(data)
    (tmp_path / "c.pem").write_bytes(recorder.cert_pem())
    openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", "-aes-192-cbc", "-stream", "-keyid",
        "-recip", str(tmp_path / "c.pem"), "-keyopt", "rsa_padding_mode:oaep",
        "-keyopt", "rsa_oaep_md:sha256", "-in", str(tmp_path / "plain"),
        "-out", str(tmp_path / "c.p7m"),
    )  # fmt: skip
    out = io.BytesIO()
    with open(tmp_path / "c.p7m", "rb") as src:
        decrypt_cms_stream(src, out, org=world.org, decryptor=world.decryptor)
    assert out.getvalue() == data


def test_file_for_another_recipient_is_not_found(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    do_import(world, recorder)
    stranger = make_identity("someone-else", rsa_key(1))
    p7m = recorder_files(tmp_path, stranger, b"not yours", "-aes-256-cbc")
    with pytest.raises(NotFound, match="no imported certificate"):
        decrypt_cms_file(p7m, tmp_path / "out", org=world.org, decryptor=world.decryptor)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncate", "last-block", "not-cms"])
def test_damaged_files_are_integrity_errors_and_leave_nothing(
    world: World, recorder: Identity, tmp_path: Path, damage: str
) -> None:
    do_import(world, recorder)
    p7m = recorder_files(tmp_path, recorder, os.urandom(5000), "-aes-256-cbc")
    blob = bytearray(p7m.read_bytes())
    if damage == "truncate":
        blob = blob[:-40]
    elif damage == "last-block":
        blob[-1] ^= 0x01  # the padding block: CBC without a MAC notices only this kind
    else:
        blob = bytearray(world.encrypt(b"an ESDK recording, not PKCS#7"))
    p7m.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        decrypt_cms_file(p7m, tmp_path / "out", org=world.org, decryptor=world.decryptor)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["plain.bin", p7m.name, "recorder.crt.pem"]
    )


def test_revoking_the_kms_key_stops_legacy_playback_after_the_cache_age(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    do_import(world, recorder)
    p7m = recorder_files(tmp_path, recorder, b"x" * 1000, "-aes-256-cbc")
    decrypt_cms_file(p7m, tmp_path / "a", org=world.org, decryptor=world.decryptor)
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    calls = world.wrapper.kms_calls
    decrypt_cms_file(p7m, tmp_path / "b", org=world.org, decryptor=world.decryptor)
    assert world.wrapper.kms_calls == calls  # within the bound: the cached KEK, no KMS call
    world.clock.advance(61)
    with pytest.raises(AccessRevoked):
        decrypt_cms_file(p7m, tmp_path / "c", org=world.org, decryptor=world.decryptor)
    assert not (tmp_path / "c").exists()


def test_key_transport_is_audited_without_secrets(
    world: World, recorder: Identity, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    imported = do_import(world, recorder)
    p7m = recorder_files(tmp_path, recorder, b"secret words", "-aes-256-cbc")
    with caplog.at_level(logging.INFO, logger="kmsbridge.audit"):
        decrypt_cms_file(p7m, tmp_path / "o", org=world.org, decryptor=world.decryptor)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    assert [(x["op"], x["outcome"], x["kek"], x["cache"]) for x in lines] == [
        ("legacy-decrypt", "ok", imported.record.kek_id, "miss")
    ]
    assert lines[0]["recording"] == p7m.name and "secret" not in caplog.text


def test_zip_of_p7m_files_decrypts_with_a_result_per_file(
    world: World, recorder: Identity, tmp_path: Path
) -> None:
    do_import(world, recorder)
    good = {f"2019/call-{i}.wav.p7m": os.urandom(1000 * i) for i in (1, 2)}
    archive = tmp_path / "old.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in good.items():
            zf.writestr(name, recorder_files(tmp_path, recorder, data, "-aes-128-cbc").read_bytes())
        stranger = make_identity("someone-else", rsa_key(1))
        zf.writestr(
            "other.p7m", recorder_files(tmp_path, stranger, b"x", "-aes-256-cbc").read_bytes()
        )
        zf.writestr("../escape.p7m", good["2019/call-1.wav.p7m"][:10])
    results = decrypt_archive(archive, tmp_path / "out", org=world.org, decryptor=world.decryptor)
    by_file = {r.file: r for r in results}
    for name, data in good.items():
        assert by_file[name].ok and by_file[name].bytes == len(data)
        assert (tmp_path / "out" / name.removesuffix(".p7m")).read_bytes() == data
    assert by_file["other.p7m"].error["code"] == "NOT_FOUND"  # type: ignore[index]
    assert by_file["../escape.p7m"].error["code"] == "INVALID_REQUEST"  # type: ignore[index]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == [
        "2019", "call-1.wav", "call-2.wav",
    ]  # fmt: skip


# ---------------------------------------------------------------- import


@pytest.mark.parametrize("fmt", ["pkcs1", "pkcs8", "encrypted-pkcs8"])
def test_each_private_key_format_imports(world: World, tmp_path: Path, fmt: str) -> None:
    """Key files made by openssl itself, in the three PEM forms recorders left behind."""
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(tmp_path / "k8.pem"))  # fmt: skip
    if fmt == "pkcs1":
        openssl(
            "rsa", "-traditional", "-in", str(tmp_path / "k8.pem"), "-out", str(tmp_path / "k.pem")
        )
    elif fmt == "encrypted-pkcs8":
        openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(tmp_path / "k8.pem"),
                "-out", str(tmp_path / "k.pem"), "-passout", "env:PW",
                env={"PW": "s3cret"})  # fmt: skip
    else:
        (tmp_path / "k.pem").write_bytes((tmp_path / "k8.pem").read_bytes())
    key_pem = (tmp_path / "k.pem").read_bytes()
    marker = {"pkcs1": b"BEGIN RSA PRIVATE KEY", "pkcs8": b"BEGIN PRIVATE KEY"}
    assert marker.get(fmt, b"BEGIN ENCRYPTED PRIVATE KEY") in key_pem
    key = serialization.load_pem_private_key((tmp_path / "k8.pem").read_bytes(), None)
    ident = make_identity("recorder", key)  # type: ignore[arg-type]
    password = b"s3cret" if fmt == "encrypted-pkcs8" else None
    result = do_import(world, ident, key_pem=key_pem, password=password)
    stored = world.store.get_kek(world.org, result.record.kek_id)
    assert (stored.source, stored.state, result.validity) == ("imported", "retired", "valid")
    assert stored.certificate == ident.cert.public_bytes(serialization.Encoding.DER)
    pkcs8 = key.private_bytes(  # the key in clear is nowhere in the item
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert stored.wrapped_private_key and pkcs8[-64:] not in stored.wrapped_private_key
    assert world.store.get_org(world.org).active_kek == world.kek_id  # not activated


def test_wrong_or_missing_password_is_refused(world: World, recorder: Identity) -> None:
    locked = recorder.key_pem(password=b"right")
    with pytest.raises(InvalidRequest, match="wrong password"):
        do_import(world, recorder, key_pem=locked, password=b"wrong")
    with pytest.raises(InvalidRequest, match="encrypted"):
        do_import(world, recorder, key_pem=locked)


def test_key_that_does_not_match_the_certificate_is_refused(
    world: World, recorder: Identity
) -> None:
    other = make_identity("other", rsa_key(1))
    with pytest.raises(InvalidRequest, match="does not match"):
        do_import(world, recorder, key_pem=other.key_pem())


def test_1024_bit_key_is_refused(world: World) -> None:
    weak = make_identity("weak", rsa_key(9, bits=1024))
    with pytest.raises(InvalidRequest, match="at least 2048 bits; this one has 1024"):
        do_import(world, weak)


@pytest.fixture
def chain() -> tuple[Identity, Identity, Identity]:
    root = make_identity("Recorder Root CA", rsa_key(2), ca=True)
    intermediate = make_identity("Recorder Issuing CA", rsa_key(3), issuer=root, ca=True)
    return root, intermediate, make_identity("recorder-7", rsa_key(4), issuer=intermediate)


def test_a_good_chain_is_verified_up_to_the_root(world: World, chain: tuple[Identity, ...]) -> None:
    root, intermediate, leaf = chain
    bundle = intermediate.cert_pem() + root.cert_pem()
    result = do_import(world, leaf, ca_bundle_pem=bundle)
    assert result.chain == ("CN=recorder-7", "CN=Recorder Issuing CA", "CN=Recorder Root CA")


@pytest.mark.parametrize("broken", ["missing-intermediate", "impostor-root", "leaf-as-ca"])
def test_a_broken_chain_is_an_integrity_error(
    world: World, chain: tuple[Identity, ...], broken: str
) -> None:
    root, intermediate, leaf = chain
    if broken == "missing-intermediate":
        bundle = root.cert_pem()
    elif broken == "impostor-root":  # same name, another key: the signature cannot verify
        bundle = (
            intermediate.cert_pem()
            + make_identity("Recorder Root CA", rsa_key(5), ca=True).cert_pem()
        )
    else:  # an end-entity certificate posing as the issuer
        fake = make_identity("Recorder Issuing CA", rsa_key(3), issuer=root, ca=False)
        bundle = fake.cert_pem() + root.cert_pem()
    with pytest.raises(IntegrityError):
        do_import(world, leaf, ca_bundle_pem=bundle)
    assert [k.source for k in world.store.list_keks(world.org)] == ["generated"]


def test_not_yet_valid_imports_but_is_refused_for_new_encryption(world: World) -> None:
    future = make_identity("next-year", rsa_key(6), not_before=FIXED_NOW + 30 * DAY)
    result = do_import(world, future)
    assert (result.validity, result.record.state) == ("not-yet-valid", "retired")
    with pytest.raises(InvalidRequest, match="refused for new encryption"):
        check_for_encryption(future.cert, FIXED_NOW)
    with pytest.raises(InvalidRequest, match="not valid before"):
        do_import(world, make_identity("also-future", rsa_key(7), not_before=FIXED_NOW + DAY),
                  activate=True)  # fmt: skip
    check_for_encryption(future.cert, FIXED_NOW + 31 * DAY)


def test_an_expired_certificate_still_decrypts(world: World, tmp_path: Path) -> None:
    old = make_identity(
        "recorder-2015", rsa_key(8), not_before=FIXED_NOW - 3000 * DAY, not_after=FIXED_NOW - DAY
    )
    assert do_import(world, old).validity == "expired"
    p7m = recorder_files(tmp_path, old, b"an old call", "-aes-256-cbc")
    decrypt_cms_file(p7m, tmp_path / "o", org=world.org, decryptor=world.decryptor)
    assert (tmp_path / "o").read_bytes() == b"an old call"
    with pytest.raises(InvalidRequest, match="expired"):
        check_for_encryption(old.cert, FIXED_NOW)


def test_the_same_key_pair_is_not_imported_twice(world: World, recorder: Identity) -> None:
    do_import(world, recorder)
    with pytest.raises(InvalidRequest, match="already a KEK"):
        do_import(world, recorder)


def test_activated_import_becomes_the_active_kek_for_new_recordings(
    world: World, recorder: Identity
) -> None:
    result = do_import(world, recorder, activate=True)
    org = world.store.get_org(world.org)
    assert org.active_kek == result.record.kek_id
    assert world.store.get_kek(world.org, world.kek_id).state == "retired"
    with pytest.raises(IntegrityError, match="does not chain up to a pinned CA"):
        public_key_for_encryption(world.store, world.org, trust=world.trust, now=FIXED_NOW)
    world.public_key = public_key_for_encryption(
        world.store, world.org, trust=customer_trust(world, recorder), now=FIXED_NOW
    )
    out = io.BytesIO()
    decrypt_stream(
        io.BytesIO(world.encrypt(b"new call")), out, org=world.org, data_keys=world.decryptor
    )
    assert out.getvalue() == b"new call"


def test_an_active_imported_kek_stops_encrypting_when_its_certificate_expires(
    world: World,
) -> None:
    from kmsbridge.lifecycle.publishing import bundle_for
    from tests.legacy_pki import DAY, make_identity, rsa_key

    expiring = make_identity(
        "short-lived recorder",
        rsa_key(7),
        not_before=FIXED_NOW - DAY,
        not_after=FIXED_NOW + 10 * DAY,
    )
    do_import(world, expiring, activate=True)
    trust = customer_trust(world, expiring)
    assert public_key_for_encryption(world.store, world.org, trust=trust, now=FIXED_NOW + 9 * DAY)
    assert bundle_for(world.store, world.org, now=FIXED_NOW).not_after.startswith(
        (FIXED_NOW + 10 * DAY).strftime("%Y-%m-%d")
    )
    with pytest.raises(InvalidRequest, match="certificate"):
        public_key_for_encryption(world.store, world.org, trust=trust, now=FIXED_NOW + 11 * DAY)


def test_an_active_imported_kek_encrypts_nothing_before_its_certificate_starts(
    world: World,
) -> None:
    from tests.legacy_pki import DAY, make_identity, rsa_key

    later = make_identity(
        "future recorder", rsa_key(8), not_before=FIXED_NOW - DAY, not_after=FIXED_NOW + 99 * DAY
    )
    do_import(world, later, activate=True)
    with pytest.raises(InvalidRequest, match="not valid before"):
        public_key_for_encryption(
            world.store, world.org, trust=customer_trust(world, later), now=FIXED_NOW - 2 * DAY
        )


def test_an_imported_chain_is_kept_and_accepted_under_the_pinned_customer_root(
    world: World,
) -> None:
    root = make_identity("customer root", rsa_key(3), ca=True)
    intermediate = make_identity("customer issuing CA", rsa_key(4), issuer=root, ca=True)
    leaf = make_identity("recorder-2024", rsa_key(5), issuer=intermediate)
    bundle = intermediate.cert_pem() + root.cert_pem()
    result = do_import(world, leaf, ca_bundle_pem=bundle, activate=True)
    assert len(result.record.certificate_chain) == 2
    stored = world.store.get_kek(world.org, result.record.kek_id)
    assert stored.certificate_chain == result.record.certificate_chain
    pinned = customer_trust(world, root)
    public = public_key_for_encryption(world.store, world.org, trust=pinned, now=FIXED_NOW)
    assert public.kek_id == result.record.kek_id
    other_org = TrustAnchors(platform=world.trust.platform, customer={"globex": (root.cert,)})
    with pytest.raises(IntegrityError, match="does not chain up to a pinned CA"):
        public_key_for_encryption(world.store, world.org, trust=other_org, now=FIXED_NOW)
