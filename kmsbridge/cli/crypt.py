"""``kmsbridge encrypt`` and ``kmsbridge decrypt`` for recording files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmsbridge.cli.base import Context, add_command
from kmsbridge.errors import InvalidRequest

if TYPE_CHECKING:
    from kmsbridge.crypto.kek import KekPublicKey
    from kmsbridge.crypto.trust import TrustAnchors


def register(subparsers: Any) -> None:
    enc = add_command(
        subparsers, "encrypt", "encrypt a recording with the org's KEK public key (no KMS call)"
    )
    enc.add_argument("--org", required=True)
    enc.add_argument(
        "--recording-id",
        help="the recording's id (required for a file); for a folder, a prefix to the ids, "
        "which are the files' relative paths",
    )
    enc.add_argument(
        "--public-keys",
        metavar="BUNDLE",
        help="public-key bundle from 'keys public': encrypt with no AWS access at all",
    )
    pins = enc.add_argument_group(
        "pinned CAs (the encryptor's own; never taken from the bundle or the key table)"
    )
    pins.add_argument(
        "--ca", metavar="FILE", help="platform CA certificate(s), PEM (default: KMSBRIDGE_CA_FILE)"
    )
    pins.add_argument(
        "--ca-fingerprint",
        metavar="SHA256",
        help="or the platform CA's SHA-256 fingerprint (default: KMSBRIDGE_CA_FINGERPRINT)",
    )
    pins.add_argument(
        "--customer-ca",
        metavar="FILE",
        help="the org's customer CA, for its imported keys "
        "(default: KMSBRIDGE_CUSTOMER_CA_DIR/ORG.pem)",
    )
    enc.add_argument(
        "--rotate-if-expired",
        action="store_true",
        help="if the active KEK is past its cryptoperiod, rotate it first (needs KMS access)",
    )
    enc.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra encryption context, e.g. kmsbridge:media=audio/wav (repeatable)",
    )
    enc.add_argument("source", metavar="IN", help="recording to encrypt, or a folder of them")
    enc.add_argument(
        "target", metavar="OUT", help="encrypted recording to write (a folder for a folder)"
    )
    enc.set_defaults(handler=encrypt)

    dec = add_command(
        subparsers, "decrypt", "decrypt a recording; the KEK is unwrapped just in time by KMS"
    )
    dec.add_argument("--org", required=True)
    dec.add_argument(
        "--range",
        metavar="START-END",
        help="only plaintext bytes START to END (END exclusive, at most 64 MiB): reads and "
        "authenticates just the frames that cover them, not the whole file",
    )
    dec.add_argument("source", metavar="IN", help="encrypted recording, or a folder of them")
    dec.add_argument(
        "target",
        metavar="OUT",
        help="plaintext to write, appearing only if whole (a folder for a folder)",
    )
    dec.set_defaults(handler=decrypt)


def encrypt(ctx: Context) -> int:
    from kmsbridge.recordings.codec import encrypt_file

    a = ctx.args
    folder = Path(a.source).is_dir()
    if not folder and not a.recording_id:
        raise InvalidRequest("--recording-id is required to encrypt a file")
    public = _public_key(ctx)
    if folder:
        return encrypt_folder(ctx, public)
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


def _public_key(ctx: Context) -> KekPublicKey:
    """From the bundle (offline: no AWS code is even imported), else from the key table;
    either way only after its certificate checked out against the pinned CAs."""
    a = ctx.args
    if a.public_keys:
        from kmsbridge.keys.bundle import read_bundle

        return read_bundle(a.public_keys, a.org, trust=_offline_trust(a))
    from kmsbridge.lifecycle.rotation import public_key_for_encryption

    trust = ctx.services.trust_for(
        a.org, ca_file=a.ca, ca_fingerprint=a.ca_fingerprint, customer_ca_file=a.customer_ca
    )
    if a.rotate_if_expired:
        return public_key_for_encryption(
            ctx.store,
            a.org,
            trust=trust,
            rotate_if_expired=True,
            kms=ctx.kms,
            certifier=ctx.services.certifier,
        )
    return public_key_for_encryption(ctx.store, a.org, trust=trust)


def _offline_trust(a: Any) -> TrustAnchors:
    """The pins for a bundle. The same variables as ``services.Settings``, read here because
    the offline path must not import the AWS SDK that ``services`` brings in."""
    import os

    from kmsbridge.crypto.trust import load_trust

    env = os.environ
    return load_trust(
        a.org,
        ca_file=a.ca or env.get("KMSBRIDGE_CA_FILE") or None,
        ca_fingerprint=a.ca_fingerprint or env.get("KMSBRIDGE_CA_FINGERPRINT") or None,
        customer_ca_file=a.customer_ca,
        customer_ca_dir=env.get("KMSBRIDGE_CUSTOMER_CA_DIR") or None,
    )


def decrypt(ctx: Context) -> int:
    from kmsbridge.recordings.codec import decrypt_file

    a = ctx.args
    if Path(a.source).is_dir():
        return decrypt_folder(ctx)
    if a.range is not None:
        return decrypt_range_to_file(ctx)
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


def encrypt_folder(ctx: Context, public: KekPublicKey) -> int:
    from kmsbridge.cli.folders import encrypted_name, recording_id_for, run_folder
    from kmsbridge.recordings.codec import encrypt_file

    a = ctx.args
    metadata = parse_metadata(a.metadata)
    return run_folder(
        ctx,
        verb="encrypted",
        rename=encrypted_name,
        one=lambda source, target, relative: encrypt_file(
            source,
            target,
            public_key=public,
            org=a.org,
            recording_id=recording_id_for(relative, a.recording_id),
            metadata=metadata,
        ),
    )


def decrypt_folder(ctx: Context) -> int:
    from kmsbridge.cli.folders import decrypted_name, run_folder
    from kmsbridge.recordings.codec import decrypt_file

    if getattr(ctx.args, "range", None):
        raise InvalidRequest("--range applies to one recording, not to a folder")
    return run_folder(
        ctx,
        verb="decrypted",
        rename=decrypted_name,
        one=lambda source, target, _: decrypt_file(
            source, target, org=ctx.args.org, data_keys=ctx.decryptor
        ),
    )


def decrypt_range_to_file(ctx: Context) -> int:
    from kmsbridge.files import atomic_output
    from kmsbridge.recordings.ranges import decrypt_range

    a = ctx.args
    start, end = parse_range(a.range)
    part = decrypt_range(a.source, start, end, org=a.org, data_keys=ctx.decryptor)
    with atomic_output(a.target) as out:
        out.write(part.data)
    ctx.emit(
        {
            "org": part.org,
            "recording": part.recording_id,
            "kek": part.kek_id,
            "start": part.start,
            "end": part.end,
            "total": part.plaintext_bytes,
            "output": a.target,
        },
        f"decrypted bytes {part.start}-{part.end} of {part.plaintext_bytes} to {a.target}",
    )
    return 0


def parse_range(text: str) -> tuple[int, int]:
    """``START-END`` in plaintext bytes, END exclusive (``0-1048576`` is the first MiB)."""
    start, sep, end = text.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        raise InvalidRequest(f"--range takes START-END in bytes, e.g. 0-1048576, not {text!r}")
    return int(start), int(end)


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--metadata takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out
