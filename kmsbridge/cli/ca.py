"""``kmsbridge ca``: the platform CA that certifies every generated KEK (a KMS signing key)."""

from __future__ import annotations

import sys
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "ca", "the platform CA: its KMS key signs KEK certificates")
    create = add_command(
        group,
        "create",
        "make the platform CA from a KMS key (ECC_NIST_P384, SIGN_VERIFY); dev and demo",
    )
    create.add_argument("--kms-key", required=True, metavar="ARN", help="the CA's KMS key")
    create.set_defaults(handler=create_ca)
    show = add_command(group, "show", "print the platform CA certificate (PEM): what to pin")
    show.set_defaults(handler=show_ca)
    issue = add_command(
        group, "issue", "certify KEKs made before the CA existed (idempotent, resumable)"
    )
    which = issue.add_mutually_exclusive_group(required=True)
    which.add_argument("org", nargs="?", help="one org")
    which.add_argument("--all-orgs", action="store_true", help="every org in the key table")
    issue.set_defaults(handler=issue_certificates)


def create_ca(ctx: Context) -> int:
    from kmsbridge.clock import utcnow
    from kmsbridge.keys.ca import KmsSigner
    from kmsbridge.keys.ca import create_ca as create
    from kmsbridge.keys.kms import region_of

    arn = ctx.args.kms_key
    signer = KmsSigner(ctx.clients.client("kms", region_of(arn)), arn)
    record = create(ctx.store, signer, now=utcnow())
    return _emit_ca(ctx, record, "platform CA")


def show_ca(ctx: Context) -> int:
    from kmsbridge.keys.ca import get_ca

    record = get_ca(ctx.store)
    if ctx.output == "json":
        return _emit_ca(ctx, record, "platform CA")
    from cryptography.hazmat.primitives.serialization import Encoding

    sys.stdout.write(record.certificate.public_bytes(Encoding.PEM).decode("ascii"))
    return 0


def _emit_ca(ctx: Context, record: Any, label: str) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    from kmsbridge.crypto.certificates import fingerprint

    cert = record.certificate
    ctx.emit(
        {
            "kms_key": record.kms_key,
            "subject": cert.subject.rfc4514_string(),
            "fingerprint": fingerprint(cert),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "certificate": cert.public_bytes(Encoding.PEM).decode("ascii"),
        },
        f"{label} {cert.subject.rfc4514_string()} (KMS key {record.kms_key})\n"
        f"SHA-256 fingerprint {fingerprint(cert)}; pin it: kmsbridge ca show > ca.pem",
    )
    return 0


def issue_certificates(ctx: Context) -> int:
    from kmsbridge.cli.progress import Progress
    from kmsbridge.formats import validate_org
    from kmsbridge.lifecycle.certification import issue_missing

    a = ctx.args
    store = ctx.store
    orgs = store.list_orgs() if a.all_orgs else [store.get_org(validate_org(a.org))]
    certifier = ctx.services.certifier
    total = sum(len(store.list_keks(o.org)) for o in orgs)
    with Progress(total, "certifying KEKs") as bar:
        report = issue_missing(store, certifier, orgs, progress=bar.advance)
    for org, kek, message in report.failed:
        sys.stderr.write(f"org {org} KEK {kek[:12]}…: {message}\n")
    ctx.emit(
        {
            "issued": [{"org": o, "kek": k} for o, k in report.issued],
            "skipped": report.skipped,
            "failed": [{"org": o, "kek": k, "error": m} for o, k, m in report.failed],
        },
        f"{len(report.issued)} certificate(s) issued, {report.skipped} KEK(s) needed none, "
        f"{len(report.failed)} failed",
    )
    return 1 if report.failed else 0
