"""``kmsbridge legacy import-key`` and ``kmsbridge legacy decrypt``: bring your own key pair,
and play PKCS#7 (CMS) recordings of older recorders with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group, count_bytes


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "legacy", "imported key pairs and PKCS#7 recordings")
    imp = add_command(
        group,
        "import-key",
        "import an RSA key pair and its certificate; the key is wrapped under the org's KMS keys",
    )
    imp.add_argument("org")
    imp.add_argument(
        "--cert", required=True, metavar="CERT.pem", help="X.509 certificate (PEM or DER)"
    )
    imp.add_argument(
        "--key",
        required=True,
        metavar="KEY.pem",
        help="private key: PEM PKCS#1, PKCS#8 or encrypted PKCS#8",
    )
    imp.add_argument(
        "--ca",
        metavar="CHAIN.pem",
        help="CA bundle: intermediates then root (PEM), or one CA certificate (DER)",
    )
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
        "decrypt a PKCS#7 file (or a zip or a folder of them) with the org's imported keys",
        description="decrypt a PKCS#7 file (or a zip or a folder of them) with the org's "
        "imported keys, via KMS. Reads AES-CBC and 3DES (des-ede3-cbc, what openssl smime "
        "writes by default); CBC carries no integrity protection, so damage shows only if "
        "the padding breaks.",
        examples="  kmsbridge legacy decrypt acme call.p7m call.wav\n"
        "  kmsbridge legacy decrypt acme calls-2019.zip calls-2019/\n"
        "  kmsbridge legacy decrypt acme --skip-existing p7m-folder/ plain/   # resume",
    )
    dec.add_argument("org")
    dec.add_argument(
        "source", metavar="IN", help="IN.p7m (CMS EnvelopedData, DER), IN.zip, or a folder"
    )
    dec.add_argument("target", metavar="OUT", help="plaintext file, or a folder for a zip/folder")
    dec.add_argument(
        "--skip-existing",
        action="store_true",
        help="folders: skip files whose output exists (resume an interrupted run)",
    )
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


_NO_INTEGRITY = "CBC carries no integrity protection: damage shows only if the padding breaks"


def decrypt(ctx: Context) -> int:
    import zipfile

    from kmsbridge.cli.streams import output_name, refuse_same_file

    a = ctx.args
    if Path(a.source).is_dir():
        return _decrypt_folder(ctx)
    if zipfile.is_zipfile(a.source):
        return _decrypt_archive(ctx)
    from kmsbridge.legacy.playback import P7M_SUFFIXES, decrypt_cms_file

    target = output_name(a.source, a.target, lambda name: _strip(name, P7M_SUFFIXES))
    refuse_same_file(a.source, target)
    info = decrypt_cms_file(a.source, target, org=a.org, decryptor=ctx.decryptor)
    ctx.emit(
        {"org": info.org, "recording": info.name, "kek": info.kek_id,
         "bytes": info.plaintext_bytes, "output": target, "cipher": info.cipher,
         "integrity": False},
        f"decrypted {count_bytes(info.plaintext_bytes)} to {target} with KEK {info.kek_id} "
        f"({info.cipher}; {_NO_INTEGRITY})",
    )  # fmt: skip
    return 0


def _strip(name: str, suffixes: tuple[str, ...]) -> str:
    lower = name.lower()
    return next((name[: -len(s)] for s in suffixes if lower.endswith(s) and name != s), name)


def _decrypt_folder(ctx: Context) -> int:
    from kmsbridge.cli.folders import run_folder
    from kmsbridge.legacy.playback import P7M_SUFFIXES, decrypt_cms_file

    return run_folder(
        ctx,
        verb="decrypted",
        rename=lambda relative: relative.with_name(_strip(relative.name, P7M_SUFFIXES)),
        one=lambda source, target, relative: decrypt_cms_file(
            source, target, org=ctx.args.org, decryptor=ctx.decryptor, name=relative.as_posix()
        ),
    )


def _decrypt_archive(ctx: Context) -> int:
    from kmsbridge.cli.folders import FileResult, report_results
    from kmsbridge.cli.progress import progress_bar
    from kmsbridge.errors import error_from_code
    from kmsbridge.legacy.playback import decrypt_archive

    a = ctx.args
    with progress_bar(0, "decrypted") as advance:
        members = decrypt_archive(
            a.source, a.target, org=a.org, decryptor=ctx.decryptor, progress=advance
        )
    results = [
        FileResult(
            f"{a.source}:{m.file}",
            m.output,
            recording=m.file,
            kek=m.kek,
            bytes=m.bytes if m.ok else None,
            error=None if m.ok or m.error is None
            else error_from_code(str(m.error["code"]), str(m.error["message"])),
        )
        for m in members
    ]  # fmt: skip
    if ctx.output == "text":
        for result in results:
            print(result.text())
    report_results(ctx, results, "decrypted")
    return 0


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
