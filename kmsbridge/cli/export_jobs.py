"""Safety rails of ``kmsbridge export``: progress bars, ``start --dry-run``, ``status --wait``
and ``fetch``. Kept apart from ``export.py`` so the command's parsing stays small."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kmsbridge.cli.base import Context
from kmsbridge.cli.progress import Progress, progress_bar

DEFAULT_POLL_SECONDS = 5.0


def list_keys(ctx: Context, bucket: str, prefix: str) -> list[str]:
    """Every key under the prefix; the bar counts keys as S3 lists them (total unknown)."""
    from kmsbridge.aws import translated

    s3 = ctx.clients.client("s3")
    keys: list[str] = []
    where = f"s3://{bucket}/{prefix}"
    with Progress(0, f"listing {where}") as bar, translated("s3", where):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            found = [o["Key"] for o in page.get("Contents", [])]
            keys += found
            bar.advance(found[-1] if found else "", step=len(found))
        bar.total = len(keys)  # known at last: the bar ends full, drawn
        bar.advance(keys[-1] if keys else "", step=0)
    return keys


def start_plan(ctx: Context, org: str, keys: list[str]) -> int:
    """``export start --dry-run``: what would be exported, checked as start checks it."""
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.job import MAX_BATCH_SIZE
    from kmsbridge.formats import validate_org

    a = ctx.args
    validate_org(org)
    unique = list(dict.fromkeys(keys))
    if not unique:
        raise InvalidRequest("the export job has no recordings")
    if not 1 <= a.batch_size <= MAX_BATCH_SIZE:
        raise InvalidRequest(f"batch size must be 1 to {MAX_BATCH_SIZE}")
    batches = -(-len(unique) // a.batch_size)
    ctx.emit(
        {"dry_run": True, "org": org, "recordings": len(unique), "batches": batches,
         "keys": unique, "dest": f"s3://{a.dest_bucket}/{a.dest_prefix}"},
        f"dry run: would export {len(unique)} recording(s) of {org} in {batches} batch(es) "
        f"to s3://{a.dest_bucket}/{a.dest_prefix}; nothing was sent or written",
    )  # fmt: skip
    return 0


def wait_for(ctx: Context, job_uri: str, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Poll ``export status`` until the job is complete; a bar shows batches done."""
    from kmsbridge.export.job import export_status

    pause = ctx.args.poll_seconds if ctx.args.poll_seconds is not None else DEFAULT_POLL_SECONDS
    status = export_status(ctx.clients, job_uri)
    with Progress(status["batches"], "batches") as bar:
        while True:
            bar.advance(status["state"], step=status["batches_done"] - bar.done)
            if status["state"] == "complete":
                return status
            sleep(max(pause, 0.1))
            status = export_status(ctx.clients, job_uri)


def fetch(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.export.fetch import fetch_job

    a = ctx.args
    if len(a.items) != 1 or not a.out:
        raise InvalidRequest("usage: kmsbridge export fetch s3://BUCKET/PREFIX/JOB -o archive.zip")
    with progress_bar(0, "fetched") as advance:
        manifest = fetch_job(ctx.clients, a.items[0], a.out, replace=a.force, progress=advance)
    count = len(manifest.get("recordings", []))
    failed = len(manifest.get("failed", []))
    ctx.emit(
        {"archive": a.out, **manifest},
        f"fetched {count} recording(s) of {manifest.get('org')} to {a.out}"
        + (f"; {failed} failed in the job (see the manifest)" if failed else ""),
    )
    return 0
