"""``kmsbridge export``: recordings re-encrypted for the customer, as a zip or as a bulk job.

    kmsbridge export ORG (--to-cert CERT.pem | --to-kms-key ARN | --to-pgp KEY.asc)
                     [--sign-key ARN] -o archive.zip RECORDINGS...
    kmsbridge export start ORG --source-bucket B --dest-bucket D --queue-url URL
                           (--to-cert ... | --to-kms-key ... | --to-pgp ...) [--sign-key ARN]
                           [KEYS... | --source-prefix P]
    kmsbridge export status s3://D/PREFIX/JOB [--wait]
    kmsbridge export fetch s3://D/PREFIX/JOB -o archive.zip
    kmsbridge export verify archive.zip [--signer signer.pem] [--key KEY]
    kmsbridge export recipients add|remove ORG (--cert C.pem | --pgp KEY.asc | --kms-key ARN)
    kmsbridge export recipients list ORG

``start``, ``status``, ``fetch``, ``verify`` and ``recipients`` are words of this command,
not org names. An export goes only to a recipient registered for the org.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kmsbridge.cli.base import COMMON, Context, Parser, add_command


def register(subparsers: Any) -> None:
    exp = add_command(
        subparsers,
        "export",
        "re-encrypt recordings for a certificate or the customer's KMS key (zip, or a bulk job)",
        description=(
            "Three forms: 'export ORG (--to-cert CERT.pem | --to-kms-key ARN) -o archive.zip "
            "RECORDINGS...' writes a zip with manifest.json; 'export start ORG --source-bucket B "
            "--dest-bucket D --queue-url URL (--to-cert ... | --to-kms-key ...) [KEYS... | "
            "--source-prefix P]' queues a bulk job; 'export status s3://D/PREFIX/JOB [--wait]' "
            "shows its progress; 'export fetch s3://D/PREFIX/JOB -o archive.zip' downloads it "
            "as one zip; 'export verify archive.zip [--signer PEM] [--key KEY]' checks an "
            "archive. Recipients: --to-cert, --to-kms-key or --to-pgp KEY.asc (OpenPGP, what "
            "gpg --decrypt reads). 'start', 'status', 'fetch' and 'verify' cannot name an org."
        ),
        examples="  kmsbridge export acme --to-cert customer.pem -o acme.zip calls/*.enc\n"
        "  kmsbridge export start acme --source-bucket recs --source-prefix 2019/ "
        "--dest-bucket exports --to-cert customer.pem --dry-run\n"
        "  kmsbridge export status s3://exports/exports/JOB/ --wait\n"
        "  kmsbridge export fetch s3://exports/exports/JOB/ -o acme-2019.zip",
    )
    _options(exp)
    exp.add_argument(
        "org", metavar="ORG|start|status|fetch|verify", help="org to export, or a job command"
    )
    # Options may follow the recordings (as in the usage above); argparse cannot interleave
    # them with a trailing list, so the rest is parsed again, intermixed, by the handler.
    exp.add_argument(
        "items",
        nargs=argparse.REMAINDER,
        metavar="ITEM",
        help="recording files; for start: ORG then S3 keys; for status: the job",
    )
    exp.set_defaults(handler=export)


def _options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--to-cert", metavar="CERT.pem", help="recipient X.509 certificate")
    target.add_argument("--to-kms-key", metavar="ARN", help="the customer's own KMS key")
    target.add_argument("--to-pgp", metavar="KEY.asc", help="recipient OpenPGP public key")
    parser.add_argument(
        "--sign-key",
        metavar="ARN",
        help="KMS ECC_NIST_P384 key that signs the manifest (default: "
        "KMSBRIDGE_EXPORT_SIGNING_KEY)",
    )
    check = parser.add_argument_group("verify")
    check.add_argument("--signer", metavar="signer.pem", help="the signer's public key to pin")
    check.add_argument("--key", metavar="KEY", help="recipient's secret key: check plaintexts too")
    parser.add_argument("-o", "--out", metavar="archive.zip", help="zip to write (ORG form)")
    job = parser.add_argument_group("bulk job (start)")
    job.add_argument("--source-bucket", help="bucket holding the recordings")
    job.add_argument("--source-prefix", help="export every object under this prefix")
    job.add_argument("--dest-bucket", help="bucket receiving the export")
    job.add_argument("--dest-prefix", help="folder for jobs (default exports/)")
    job.add_argument("--queue-url", help="the jobs SQS queue (default: KMSBRIDGE_JOBS_QUEUE_URL)")
    job.add_argument("--batch-size", type=int, help="recordings per message (1-100, default 20)")
    who = parser.add_argument_group("recipients add|remove")
    kind = who.add_mutually_exclusive_group()
    kind.add_argument("--cert", metavar="C.pem", help="a recipient X.509 certificate")
    kind.add_argument("--pgp", metavar="KEY.asc", help="a recipient OpenPGP public key")
    kind.add_argument("--kms-key", metavar="ARN", help="a recipient KMS key (the customer's)")
    kind.add_argument("--id", dest="recipient_id", help="remove: the recipient's id (list)")
    _safety_options(parser)


def _safety_options(parser: argparse.ArgumentParser) -> None:
    rails = parser.add_argument_group("safety")
    rails.add_argument("--force", action="store_true", help="replace an existing -o archive")
    rails.add_argument(
        "--dry-run", action="store_true", help="start: list what would be exported; send nothing"
    )
    rails.add_argument("--wait", action="store_true", help="status: poll until the job is done")
    rails.add_argument(
        "--poll-seconds", type=float, help="status --wait: seconds between polls (default 5)"
    )


def _parse_rest(ctx: Context) -> None:
    """Parse what followed ORG (options and items, in any order) into ``ctx.args``."""
    inner = Parser(prog="kmsbridge export", parents=[COMMON], argument_default=argparse.SUPPRESS)
    _options(inner)
    # An explicit default: with none given, the leftovers (option names) must not stay items.
    inner.add_argument("items", nargs="*", default=[])
    for name, value in vars(inner.parse_intermixed_args(ctx.args.items)).items():
        setattr(ctx.args, name, value)
    a = ctx.args
    a.dest_prefix = a.dest_prefix or "exports/"
    a.batch_size = a.batch_size or 20
    a.queue_url = a.queue_url or os.environ.get("KMSBRIDGE_JOBS_QUEUE_URL")


def export(ctx: Context) -> int:
    _parse_rest(ctx)
    command = ctx.args.org
    if command == "status":
        return _status(ctx)
    if command == "start":
        return _start(ctx)
    if command == "verify":
        from kmsbridge.cli.export_custody import verify

        return verify(ctx)
    if command == "fetch":
        from kmsbridge.cli.export_jobs import fetch

        return fetch(ctx)
    if command == "recipients":
        return _recipients(ctx)
    return _archive(ctx)


def _target(ctx: Context) -> Any:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.archive import certificate_target, kms_target

    a = ctx.args
    if a.to_cert:
        return certificate_target(Path(a.to_cert).read_bytes())
    if a.to_kms_key:
        return kms_target(a.to_kms_key)
    if a.to_pgp:
        from kmsbridge.cli.export_custody import pgp_recipient_target

        return pgp_recipient_target(a.to_pgp)
    raise InvalidRequest("name the recipient: --to-cert CERT.pem, --to-kms-key ARN or --to-pgp KEY")


def _archive(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.archive import export_archive

    a = ctx.args
    if not a.out:
        raise InvalidRequest("name the archive to write: -o archive.zip")
    from kmsbridge.cli.export_custody import manifest_signer
    from kmsbridge.cli.progress import progress_bar

    with progress_bar(len(a.items), "exported") as advance:
        manifest = export_archive(
            a.org,
            a.items,
            a.out,
            decryptor=ctx.decryptor,
            target=_target(ctx),
            clients=ctx.clients,
            signer=manifest_signer(ctx),
            replace=a.force,
            progress=advance,
        )
    count = len(manifest["recordings"])
    ctx.emit(
        {"archive": a.out, **manifest},
        f"exported {count} recording(s) of {a.org} to {a.out} ({manifest['format']})",
    )
    return 0


def _start(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.job import start_export_job

    a = ctx.args
    if not a.items:
        raise InvalidRequest("usage: kmsbridge export start ORG --source-bucket ... [KEYS...]")
    org, keys = a.items[0], list(a.items[1:])
    for name in ("source_bucket", "dest_bucket", "queue_url"):
        if not getattr(a, name):
            raise InvalidRequest(f"export start needs --{name.replace('_', '-')}")
    target = _target(ctx)
    if a.source_prefix is not None:
        from kmsbridge.cli.export_jobs import list_keys

        keys += list_keys(ctx, a.source_bucket, a.source_prefix)
    if a.dry_run:
        from kmsbridge.cli.export_jobs import start_plan
        from kmsbridge.export.archive import check_registered

        check_registered(ctx.store, org, target)  # a dry run says so too
        return start_plan(ctx, org, keys)
    job = start_export_job(
        ctx.clients,
        store=ctx.store,
        org=org,
        source_bucket=a.source_bucket,
        keys=keys,
        dest_bucket=a.dest_bucket,
        queue_url=a.queue_url,
        target=target,
        dest_prefix=a.dest_prefix,
        batch_size=a.batch_size,
        signing_key=a.sign_key or os.environ.get("KMSBRIDGE_EXPORT_SIGNING_KEY") or None,
    )
    ctx.emit(
        {"job": job.uri, "org": org, "recordings": len(set(keys))},
        f"started export job {job.uri} for {len(set(keys))} recording(s); "
        f"follow it with: kmsbridge export status {job.uri}",
    )
    return 0


def _status(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.job import export_status

    if len(ctx.args.items) != 1:
        raise InvalidRequest("usage: kmsbridge export status s3://BUCKET/PREFIX/JOB [--wait]")
    if ctx.args.wait:
        from kmsbridge.cli.export_jobs import wait_for

        status = wait_for(ctx, ctx.args.items[0])
    else:
        status = export_status(ctx.clients, ctx.args.items[0])
    text = (
        f"{status['job']}: {status['state']}, {status['batches_done']}/{status['batches']} "
        f"batches, {status['exported']} exported, {status['failed']} failed "
        f"of {status['recordings']} recording(s)"
    )
    if status["manifest"]:
        text += f"; manifest {status['manifest']}"
    ctx.emit(status, text)
    return 0


def _recipients(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export import recipients

    a = ctx.args
    if len(a.items) != 2 or a.items[0] not in ("add", "list", "remove"):
        raise InvalidRequest("usage: kmsbridge export recipients add|list|remove ORG [...]")
    action, org = a.items
    if action == "list":
        rows = [_row(r) for r in recipients.list_recipients(ctx.store, org)]
        lines = [
            f"{r['id']}  {r['label']}  added by {r['added_by']} at {r['added_at']}" for r in rows
        ]
        ctx.emit({"org": org, "recipients": rows}, "\n".join(lines) or f"org {org}: none")
        return 0
    if action == "add":
        added = recipients.add_recipient(ctx.store, org, _recipient(ctx))
        ctx.emit({"org": org, **_row(added)}, f"org {org}: export recipient {added.recipient_id}")
        return 0
    from kmsbridge.cli.kek import operator

    recipient_id = a.recipient_id or _recipient(ctx).recipient_id
    recipients.remove_recipient(ctx.store, org, recipient_id, removed_by=operator(ctx))
    ctx.emit({"org": org, "removed": recipient_id}, f"org {org}: removed {recipient_id}")
    return 0


def _recipient(ctx: Context) -> Any:
    from kmsbridge.cli.kek import operator
    from kmsbridge.clock import utcnow
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export import recipients

    a, who, now = ctx.args, operator(ctx), utcnow()
    if a.cert:
        return recipients.certificate_recipient(Path(a.cert).read_bytes(), added_by=who, now=now)
    if a.pgp:
        return recipients.register_pgp_recipient(Path(a.pgp).read_bytes(), added_by=who, now=now)
    if a.kms_key:
        return recipients.kms_recipient(a.kms_key, added_by=who, now=now)
    raise InvalidRequest("name the recipient: --cert C.pem, --pgp KEY.asc or --kms-key ARN")


def _row(recipient: Any) -> dict[str, str]:
    return {
        "id": recipient.recipient_id,
        "kind": recipient.kind,
        "label": recipient.label,
        "added_by": recipient.added_by,
        "added_at": recipient.added_at,
    }
