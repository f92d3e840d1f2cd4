"""``kmsbridge legacy import-key`` and ``kmsbridge legacy decrypt``: bring your own key pair,
and play PKCS#7 (CMS) recordings of older recorders with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "legacy", "imported key pairs and PKCS#7 recordings")
    imp = add_command(
        group,
        "import-key",
        "import an RSA key pair and its certificate; the key is wrapped under the org's KMS keys",
    )
    imp.add_argument("org")
    imp.add_argument("--cert", required=True, metavar="CERT.pem", help="X.509 certificate (PEM)")
    imp.add_argument(
        "--key",
        required=True,
        metavar="KEY.pem",
        help="private key: PEM PKCS#1, PKCS#8 or encrypted PKCS#8",
    )
    imp.add_argument("--ca", metavar="CHAIN.pem", help="CA bundle: intermediates then root (PEM)")
    imp.add_argument(
        "--password-env",
        metavar="NAME",
        help="environment variable holding the key's password (else a prompt if needed)",
    )
    imp.add_argument(
        "--activate",
        action="store_true",
        help="make it the org's active KEK (default: retired, decrypt-only)",
    )
    imp.set_defaults(handler=import_key)

    dec = add_command(
        group,
        "decrypt",
        "decrypt a PKCS#7 file (or a zip of them) with the org's imported keys, via KMS",
    )
    dec.add_argument("org")
    dec.add_argument("source", metavar="IN", help="IN.p7m (CMS EnvelopedData, DER) or IN.zip")
    dec.add_argument("target", metavar="OUT", help="plaintext file, or a folder for a zip")
    dec.set_defaults(handler=decrypt)


def import_key(ctx: Context) -> int:
    from kmsbridge.legacy.certificates import is_encrypted_pem
    from kmsbridge.legacy.import_key import import_key_pair

    a = ctx.args
    key_pem = _read(a.key)
    password = _password(a.password_env, a.key) if is_encrypted_pem(key_pem) else None
    result = import_key_pair(
        ctx.store,
        ctx.kms,
        a.org,
        certificate_pem=_read(a.cert),
        private_key_pem=key_pem,
        password=password,
        ca_bundle_pem=_read(a.ca) if a.ca else None,
        activate=a.activate,
    )
    record = result.record
    ctx.emit(
        {
            "org": record.org,
            "kek": record.kek_id,
            "state": record.state,
            "source": record.source,
            "subject": result.subject,
            "not_before": result.not_before,
            "not_after": result.not_after,
            "validity": result.validity,
            "chain": list(result.chain),
        },
        f"imported KEK {record.kek_id} ({record.state}) for {result.subject}, "
        f"certificate {result.validity} {result.not_before} to {result.not_after}",
    )
    return 0


def decrypt(ctx: Context) -> int:
    import zipfile

    a = ctx.args
    if zipfile.is_zipfile(a.source):
        return _decrypt_archive(ctx)
    from kmsbridge.legacy.playback import decrypt_cms_file

    info = decrypt_cms_file(a.source, a.target, org=a.org, decryptor=ctx.decryptor)
    ctx.emit(
        {"org": info.org, "kek": info.kek_id, "bytes": info.plaintext_bytes, "output": a.target},
        f"decrypted {info.plaintext_bytes} bytes to {a.target} with KEK {info.kek_id}",
    )
    return 0


def _decrypt_archive(ctx: Context) -> int:
    from dataclasses import asdict

    from kmsbridge.cli import exit_codes
    from kmsbridge.legacy.playback import decrypt_archive

    a = ctx.args
    results = decrypt_archive(a.source, a.target, org=a.org, decryptor=ctx.decryptor)
    lines = [
        f"ok     {r.file} -> {r.output} ({r.bytes} bytes)"
        if r.ok
        else f"failed {r.file}: {(r.error or {}).get('code')}: {(r.error or {}).get('message')}"
        for r in results
    ]
    ctx.emit({"org": a.org, "files": [asdict(r) for r in results]}, "\n".join(lines))
    failed = [r for r in results if not r.ok]
    if not failed:
        return 0
    code = str((failed[0].error or {}).get("code", "INTERNAL"))
    sys.stderr.write(
        f"error: {code}: {len(failed)} of {len(results)} files did not decrypt "
        f"(first: {failed[0].file})\n"
    )
    return exit_codes.BY_ERROR_CODE.get(code, exit_codes.INTERNAL)


def _read(path: str) -> bytes:
    from kmsbridge.errors import InvalidRequest

    data = Path(path).read_bytes()
    if len(data) > 1024 * 1024:
        raise InvalidRequest(f"{path} is larger than 1 MiB; it is not a PEM key or certificate")
    return data


def _password(env_name: str | None, key_path: str) -> bytes:
    """From the named environment variable, else a prompt on a terminal; never from argv."""
    from kmsbridge.errors import InvalidRequest

    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise InvalidRequest(f"environment variable {env_name} (--password-env) is not set")
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise InvalidRequest(
            f"{key_path} is encrypted: name the variable with its password in --password-env"
        )
    import getpass

    return getpass.getpass(f"password for {key_path}: ").encode("utf-8")
