"""Issue 15 finding 7: a bring-your-own-key chain must end at a root of ``--ca``, through CAs.

Before: a self-signed leaf passed whatever ``--ca`` named, and an issuer's CA flag (v1 and
extension-less certificates counted as CAs), keyCertSign and path length, and the leaf's
key usage were not checked. Each attack below is now refused (INTEGRITY for the chain,
INVALID_REQUEST for the leaf's usage), nothing is written, and the real ``openssl verify``
refuses the same chain (it accepts the good ones), so kmsbridge and OpenSSL agree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.cli import exit_codes
from kmsbridge.cli.main import main
from kmsbridge.errors import IntegrityError, InvalidRequest, KmsBridgeError
from kmsbridge.legacy.import_key import import_key_pair
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import Identity, make_identity, rsa_key

CA_USAGE = {"key_cert_sign", "crl_sign"}
LEAF_USAGE = {"key_encipherment"}


def root(**kw: Any) -> Identity:
    kw.setdefault("key_usage", CA_USAGE)
    return make_identity("BYOK Root", rsa_key(2), ca=True, **kw)


def issuing(parent: Identity, **kw: Any) -> Identity:
    kw.setdefault("key_usage", CA_USAGE)
    kw.setdefault("ca", True)
    return make_identity("BYOK Issuing CA", rsa_key(3), issuer=parent, **kw)


def leaf(parent: Identity | None, **kw: Any) -> Identity:
    kw.setdefault("key_usage", LEAF_USAGE)
    return make_identity("recorder-42", rsa_key(4), issuer=parent, **kw)


def openssl_verifies(
    tmp_path: Path, cert: Identity, trusted: list[Identity], chain: list[Identity]
) -> bool:
    (tmp_path / "leaf.pem").write_bytes(cert.cert_pem())
    (tmp_path / "ca.pem").write_bytes(b"".join(c.cert_pem() for c in trusted))
    args = ["openssl", "verify", "-attime", str(int(FIXED_NOW.timestamp()))]
    args += ["-CAfile", str(tmp_path / "ca.pem")]
    if chain:
        (tmp_path / "chain.pem").write_bytes(b"".join(c.cert_pem() for c in chain))
        args += ["-untrusted", str(tmp_path / "chain.pem")]
    result = subprocess.run([*args, str(tmp_path / "leaf.pem")], capture_output=True, check=False)
    return result.returncode == 0


def imported(world: World, cert: Identity, bundle: list[Identity]) -> str:
    """``ok``, or the refusal's code; the key table checked unchanged on refusal."""
    before = world.store.list_keks(world.org)
    try:
        import_key_pair(
            world.store,
            world.wrapper,
            world.org,
            certificate_pem=cert.cert_pem(),
            private_key_pem=cert.key_pem(),
            ca_bundle_pem=b"".join(c.cert_pem() for c in bundle),
            now=FIXED_NOW,
        )
    except KmsBridgeError as exc:
        assert world.store.list_keks(world.org) == before  # nothing written
        return exc.code
    return "ok"


def test_a_good_chain_passes_here_and_in_openssl(world: World, tmp_path: Path) -> None:
    r = root(path_length=1)
    i = issuing(r, path_length=0)
    good = leaf(i)
    assert openssl_verifies(tmp_path, good, [r], [i])
    assert imported(world, good, [i, r]) == "ok"


def test_a_self_signed_leaf_is_refused_unless_the_bundle_holds_it(
    world: World, tmp_path: Path
) -> None:
    stranger = leaf(None)  # self-signed: before the fix, any --ca let it through
    r = root()
    assert not openssl_verifies(tmp_path, stranger, [r], [])
    assert imported(world, stranger, [r]) == "INTEGRITY"
    # The operator who puts that very certificate in the bundle vouches for it.
    assert imported(world, stranger, [stranger]) == "ok"


@pytest.mark.parametrize(
    "attack",
    [
        "issuer-not-ca",
        "issuer-without-basic-constraints",
        "issuer-without-keycertsign",
        "path-length",
    ],
)
def test_an_issuer_that_may_not_sign_is_refused(world: World, tmp_path: Path, attack: str) -> None:
    r = root(path_length=0 if attack == "path-length" else None)
    if attack == "issuer-not-ca":
        i = issuing(r, ca=False)
    elif attack == "issuer-without-basic-constraints":
        i = issuing(r, basic_constraints=False)
    elif attack == "issuer-without-keycertsign":
        i = issuing(r, key_usage={"digital_signature", "crl_sign"})
    else:  # the root allows no CA below it, yet an issuing CA signs the leaf
        i = issuing(r)
    cert = leaf(i)
    assert not openssl_verifies(tmp_path, cert, [r], [i])
    assert imported(world, cert, [i, r]) == "INTEGRITY"


def test_a_leaf_whose_key_usage_excludes_key_encipherment_is_refused(world: World) -> None:
    r = root()
    signing_only = leaf(r, key_usage={"digital_signature"})
    assert imported(world, signing_only, [r]) == "INVALID_REQUEST"
    with pytest.raises(InvalidRequest, match="keyEncipherment"):
        import_key_pair(
            world.store,
            world.wrapper,
            world.org,
            certificate_pem=signing_only.cert_pem(),
            private_key_pem=signing_only.key_pem(),
            now=FIXED_NOW,
        )


def test_the_cli_refuses_a_self_signed_leaf_with_one_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    stranger = leaf(None)
    cert, key = stranger.write(tmp_path, "stranger")
    (tmp_path / "ca.pem").write_bytes(root().cert_pem())
    argv = ["legacy", "import-key", world.org, "--cert", str(cert), "--key", str(key)]
    code = main([*argv, "--ca", str(tmp_path / "ca.pem")])
    out, err = capsys.readouterr()
    assert code == exit_codes.INTEGRITY and out == ""
    assert err.startswith("error: INTEGRITY: ") and err.count("\n") == 1
    assert "not in the CA bundle" in err
    assert [k.source for k in world.store.list_keks(world.org)] == ["generated"]
    with pytest.raises(IntegrityError):  # the library says the same
        imported_strict(world, stranger, [root()])


def imported_strict(world: World, cert: Identity, bundle: list[Identity]) -> None:
    import_key_pair(
        world.store,
        world.wrapper,
        world.org,
        certificate_pem=cert.cert_pem(),
        private_key_pem=cert.key_pem(),
        ca_bundle_pem=b"".join(c.cert_pem() for c in bundle),
        now=FIXED_NOW,
    )
