"""``kmsbridge encrypt`` and ``kmsbridge decrypt`` for recording files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmsbridge.cli.base import Context, add_command, count_bytes
from kmsbridge.cli.streams import (
    is_s3,
    open_input,
    open_output,
    output_name,
    refuse_same_file,
    s3_source,
)
from kmsbridge.errors import InvalidRequest

if TYPE_CHECKING:
    from kmsbridge.crypto.kek import KekPublicKey
    from kmsbridge.crypto.trust import TrustAnchors
    from kmsbridge.recordings.codec import RecordingInfo


_ENCRYPT_EXAMPLES = """\
  kmsbridge encrypt --org acme --recording-id call-17 call-17.wav call-17.wav.enc
  kmsbridge encrypt --org acme --recording-id c17 --public-keys b.pem --ca ca.pem c.wav out/
  arecord -f cd | kmsbridge encrypt --org acme --recording-id live-1 - s3://recs/live-1.enc
  kmsbridge encrypt --org acme --skip-existing calls/ encrypted/   # resume a folder"""

_DECRYPT_EXAMPLES = """\
  kmsbridge decrypt --org acme call-17.wav.enc call-17.wav
  kmsbridge decrypt --org acme s3://recs/call-17.wav.enc - | ffplay -
  kmsbridge decrypt --org acme --range 1048576- call-17.wav.enc tail.wav
  kmsbridge decrypt --org acme --skip-existing encrypted/ plain/   # resume a folder"""

_STREAMS = (
    "'-' is stdin/stdout: plaintext is written frame by frame, each frame only after it "
    "authenticated, so a stream that fails later has already delivered earlier frames (the "
    "command then exits non-zero). Files appear whole or not at all."
)


def register(subparsers: Any) -> None:
    enc = add_command(
        subparsers,
        "encrypt",
        "encrypt a recording with the org's KEK public key (no KMS call)",
        examples=_ENCRYPT_EXAMPLES,
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
    _output_options(enc)
    enc.add_argument(
        "source", metavar="IN", help="recording, folder, '-' (stdin) or s3://bucket/key"
    )
    enc.add_argument(
        "target",
        metavar="OUT",
        help="encrypted recording: file, folder (trailing '/'), '-' (stdout) or s3://bucket/key",
    )
    enc.set_defaults(handler=encrypt)

    dec = add_command(
        subparsers,
        "decrypt",
        "decrypt a recording; the KEK is unwrapped just in time by KMS",
        description="decrypt a recording; the KEK is unwrapped just in time by KMS. " + _STREAMS,
        examples=_DECRYPT_EXAMPLES,
    )
    dec.add_argument("--org", required=True)
    dec.add_argument(
        "--range",
        metavar="START-END",
        help="only plaintext bytes START to END (END exclusive, at most 64 MiB; 'START-' to "
        "the end; an END past the end stops there): reads and authenticates just the frames "
        "that cover them",
    )
    _output_options(dec)
    dec.add_argument(
        "source", metavar="IN", help="encrypted recording, folder, '-' (stdin) or s3://bucket/key"
    )
    dec.add_argument(
        "target",
        metavar="OUT",
        help="plaintext: file (appears only if whole), folder (trailing '/'), '-' (stdout, "
        "frame by frame), a FIFO, or s3://bucket/key",
    )
    dec.set_defaults(handler=decrypt)


def _output_options(parser: Any) -> None:
    parser.add_argument(
        "--no-clobber", action="store_true", help="refuse to replace an existing OUT"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="folders: skip files whose output exists (resume an interrupted run)",
    )


def encrypt(ctx: Context) -> int:
    a = ctx.args
    if not is_s3(a.source) and Path(a.source).is_dir():
        return encrypt_folder(ctx, _public_key(ctx))
    if not a.recording_id:
        raise InvalidRequest("--recording-id is required to encrypt a file")
    target = output_name(a.source, a.target, lambda name: name + ".enc")
    refuse_same_file(a.source, target)
    info = encrypt_one(ctx, a.source, target, _public_key(ctx), a.recording_id)
    ctx.emit(
        _info_dict(info, target),
        f"encrypted {count_bytes(info.plaintext_bytes)} to {target} under KEK {info.kek_id}",
    )
    return 0


def encrypt_one(
    ctx: Context, source: str, target: str, public: KekPublicKey, recording_id: str
) -> RecordingInfo:
    from kmsbridge.recordings.codec import encrypt_stream

    a = ctx.args
    with open_input(ctx, source) as src, open_output(ctx, target, replace=_replace(a)) as out:
        return encrypt_stream(
            src,
            out,
            public_key=public,
            org=a.org,
            recording_id=recording_id,
            metadata=parse_metadata(a.metadata),
        )


def decrypt_one(ctx: Context, source: str, target: str) -> RecordingInfo:
    from kmsbridge.recordings.codec import decrypt_stream

    replace = _replace(ctx.args)
    with open_input(ctx, source) as src, open_output(ctx, target, replace=replace) as out:
        return decrypt_stream(src, out, org=ctx.args.org, data_keys=ctx.decryptor)


def _replace(args: Any) -> bool:
    return not getattr(args, "no_clobber", False)


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
    a = ctx.args
    if not is_s3(a.source) and Path(a.source).is_dir():
        return decrypt_folder(ctx)
    target = output_name(a.source, a.target, _decrypted_name)
    refuse_same_file(a.source, target)
    if a.range is not None:
        return decrypt_range_to(ctx, target)
    info = decrypt_one(ctx, a.source, target)
    ctx.emit(_info_dict(info, target), f"decrypted {count_bytes(info.plaintext_bytes)} to {target}")
    return 0


def _decrypted_name(name: str) -> str:
    return name.removesuffix(".enc") or name


def _info_dict(info: RecordingInfo, target: str) -> dict[str, Any]:
    return {
        "org": info.org,
        "recording": info.recording_id,
        "kek": info.kek_id,
        "bytes": info.plaintext_bytes,
        "output": target,
    }


def encrypt_folder(ctx: Context, public: KekPublicKey) -> int:
    from kmsbridge.cli.folders import encrypted_name, recording_id_for, run_folder

    a = ctx.args
    return run_folder(
        ctx,
        verb="encrypted",
        rename=encrypted_name,
        one=lambda source, target, relative: encrypt_one(
            ctx, str(source), str(target), public, recording_id_for(relative, a.recording_id)
        ),
    )


def decrypt_folder(ctx: Context) -> int:
    from kmsbridge.cli.folders import decrypted_name, run_folder

    if getattr(ctx.args, "range", None):
        raise InvalidRequest("--range applies to one recording, not to a folder")
    return run_folder(
        ctx,
        verb="decrypted",
        rename=decrypted_name,
        one=lambda source, target, _: decrypt_one(ctx, str(source), str(target)),
    )


def decrypt_range_to(ctx: Context, target: str) -> int:
    from kmsbridge.recordings.ranges import decrypt_range

    a = ctx.args
    if a.source == "-":
        raise InvalidRequest("--range reads only the frames it needs: IN must be a file or S3")
    start, end = parse_range(a.range)
    source = s3_source(ctx, a.source) if is_s3(a.source) else a.source
    part = decrypt_range(source, start, end, org=a.org, data_keys=ctx.decryptor, clamp=True)
    with open_output(ctx, target, replace=_replace(a)) as out:
        out.write(part.data)
    ctx.emit(
        {
            "org": part.org,
            "recording": part.recording_id,
            "kek": part.kek_id,
            "start": part.start,
            "end": part.end,
            "bytes": part.end - part.start,
            "total": part.plaintext_bytes,
            "output": target,
        },
        f"decrypted bytes {part.start}-{part.end} of {count_bytes(part.plaintext_bytes)} "
        f"to {target}",
    )
    return 0


def parse_range(text: str) -> tuple[int, int | None]:
    """``START-END`` in plaintext bytes, END exclusive (``0-1048576`` is the first MiB), or
    ``START-`` to the end. An END past the end of the recording stops at its end."""
    start, sep, end = text.partition("-")
    if not sep or not start.isdigit() or not (end.isdigit() or end == ""):
        raise InvalidRequest(
            f"--range takes START-END or START- in bytes, e.g. 0-1048576, not {text!r}"
        )
    return int(start), int(end) if end else None


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--metadata takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out
