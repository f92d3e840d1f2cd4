"""The chain-of-custody parts of ``kmsbridge export``: the PGP recipient, the manifest's
signature and ``export verify`` (kept apart from ``cli/export.py``'s argument handling).

    kmsbridge export ORG --to-pgp KEY.asc [--sign-key ARN] -o archive.zip RECORDINGS...
    kmsbridge export verify archive.zip [--signer signer.pem] [--key KEY]

``verify`` exits 0 when everything checked matches, and with ``INTEGRITY`` (status 5) at
the first file, hash or signature that does not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kmsbridge.cli.base import Context

if TYPE_CHECKING:
    from kmsbridge.export.archive import ExportTarget
    from kmsbridge.export.signing import ManifestSigner

SIGNING_KEY_ENV = "KMSBRIDGE_EXPORT_SIGNING_KEY"


def pgp_recipient_target(path: str) -> ExportTarget:
    """``--to-pgp KEY.asc``: the OpenPGP public key, checked (``export.pgp.pgp_recipient``).

    Whether it is a registered recipient of the org is checked where every target is, by
    ``export.archive.check_registered``, before any recording is read.
    """
    from kmsbridge.export.archive import pgp_target

    return pgp_target(Path(path).read_bytes())


def manifest_signer(ctx: Context) -> ManifestSigner | None:
    """``--sign-key ARN`` (or ``KMSBRIDGE_EXPORT_SIGNING_KEY``): who signs the manifest."""
    from kmsbridge.export.signing import ManifestSigner

    arn = ctx.option("sign_key") or os.environ.get(SIGNING_KEY_ENV)
    return ManifestSigner(ctx.clients, arn) if arn else None


def verify(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.verify import verify_archive

    items = ctx.args.items
    if len(items) != 1:
        raise InvalidRequest("usage: kmsbridge export verify archive.zip [--signer PEM] [--key K]")
    signer = ctx.option("signer")
    key = ctx.option("key")
    report = verify_archive(
        items[0],
        signer_pem=Path(signer).read_bytes() if signer else None,
        key=Path(key).read_bytes() if key else None,
    )
    ctx.emit(report, _text(report))
    return 0


def _text(report: dict[str, object]) -> str:
    lines = [
        f"{report['archive']}: {report['recordings']} recording(s) of {report['org']} "
        f"({report['format']}), every file matches its SHA-256 in the manifest"
    ]
    if report["signature"] == "absent":
        lines.append("manifest: not signed")
    elif report["signer_pinned"]:
        lines.append(
            f"manifest: signature verified with the given signer {report['signer_sha256']}"
        )
    else:
        lines.append(
            f"manifest: signature verified with the archive's own signer key, SHA-256 "
            f"{report['signer_sha256']}: compare it with the key you were given (--signer)"
        )
    if report["plaintext_checked"]:
        lines.append("plaintext: every file decrypts to the size and SHA-256 in the manifest")
    return "\n".join(lines)
