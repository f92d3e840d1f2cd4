"""``kmsbridge encrypt`` and ``kmsbridge decrypt`` for recording files."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command


def register(subparsers: Any) -> None:
    enc = add_command(
        subparsers, "encrypt", "encrypt a recording with the org's KEK public key (no KMS call)"
    )
    enc.add_argument("--org", required=True)
    enc.add_argument("--recording-id", required=True)
    enc.add_argument(
        "--public-keys",
        metavar="BUNDLE",
        help="public-key bundle from 'keys public': encrypt with no AWS access at all",
    )
    enc.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra encryption context, e.g. kmsbridge:media=audio/wav (repeatable)",
    )
    enc.add_argument("source", metavar="IN", help="recording to encrypt")
    enc.add_argument("target", metavar="OUT", help="encrypted recording to write")
    enc.set_defaults(handler=encrypt)

    dec = add_command(
        subparsers, "decrypt", "decrypt a recording; the KEK is unwrapped just in time by KMS"
    )
    dec.add_argument("--org", required=True)
    dec.add_argument("source", metavar="IN", help="encrypted recording")
    dec.add_argument("target", metavar="OUT", help="plaintext to write (appears only if whole)")
    dec.set_defaults(handler=decrypt)


def encrypt(ctx: Context) -> int:
    from kmsbridge.bundle import read_bundle
    from kmsbridge.lifecycle import public_key_for_encryption
    from kmsbridge.recordings import encrypt_file

    a = ctx.args
    if a.public_keys:
        public = read_bundle(a.public_keys, a.org)
    else:
        public = public_key_for_encryption(ctx.store, a.org)
    info = encrypt_file(
        a.source,
        a.target,
        public_key=public,
        org=a.org,
        recording_id=a.recording_id,
        metadata=parse_metadata(a.metadata),
    )
    ctx.emit(
        {
            "org": info.org,
            "recording": info.recording_id,
            "kek": info.kek_id,
            "bytes": info.plaintext_bytes,
            "output": a.target,
        },
        f"encrypted {info.plaintext_bytes} bytes to {a.target} under KEK {info.kek_id}",
    )
    return 0


def decrypt(ctx: Context) -> int:
    from kmsbridge.recordings import decrypt_file

    a = ctx.args
    info = decrypt_file(a.source, a.target, org=a.org, data_keys=ctx.decryptor)
    ctx.emit(
        {
            "org": info.org,
            "recording": info.recording_id,
            "kek": info.kek_id,
            "bytes": info.plaintext_bytes,
            "output": a.target,
        },
        f"decrypted {info.plaintext_bytes} bytes to {a.target}",
    )
    return 0


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    from kmsbridge.errors import InvalidRequest

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--metadata takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out
