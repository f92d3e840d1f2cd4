"""The laptop loop: ``kmsbridge dev-server`` (the embedded AWS until Ctrl-C) and
``kmsbridge jobs work`` (the jobs worker against the queue, in this process).

    kmsbridge dev-server [--port N]       # then, in another shell, the printed exports
    kmsbridge jobs work [--once] [--queue-url URL]

``dev-server`` is moto's server on 127.0.0.1 with the key-state fixture of
``kmsbridge.devtools.embedded`` (imported only when the command runs: the library never
imports devtools). It creates the key table, a jobs queue and a platform CA (a KMS signing
key; its certificate in a temporary file, KMSBRIDGE_CA_FILE) and prints the environment
that points every other kmsbridge command (and boto3, and the AWS CLI) at it. Its state
lives in memory and is gone when it stops.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group

DEV_QUEUE = "kmsbridge-jobs"


def register(subparsers: Any) -> None:
    server = add_command(
        subparsers,
        "dev-server",
        "run the embedded AWS (moto on 127.0.0.1) until Ctrl-C and print the environment",
        description=(
            "Start moto's server on 127.0.0.1 with kmsbridge's KMS key-state fixture, create "
            "the key table and a jobs queue, print the variables to export in another "
            "shell, and serve until Ctrl-C. Example: kmsbridge dev-server --port 5000"
        ),
    )
    server.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    server.set_defaults(handler=run_dev_server)
    jobs = add_group(subparsers, "jobs", "the jobs worker (bulk rewrap and export)")
    work = add_command(
        jobs,
        "work",
        "run the jobs worker here against the SQS queue (what the jobs Lambda does)",
    )
    work.add_argument("--once", action="store_true", help="stop when the queue is empty")
    work.add_argument("--queue-url", help="the jobs queue (default: KMSBRIDGE_JOBS_QUEUE_URL)")
    work.set_defaults(handler=run_jobs_work)


def run_dev_server(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest

    if importlib.util.find_spec("moto") is None:
        raise InvalidRequest("the dev server is moto: pip install 'moto[server]==5.2.5'")
    port = ctx.args.port
    if not 0 <= port <= 65535:
        raise InvalidRequest("--port must be 0 to 65535")
    from kmsbridge.devtools.embedded import embedded_aws

    region = ctx.option("region") or "us-east-1"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with embedded_aws(region, port=port) as endpoint, _ca_file() as ca_file:
            ctx.store.create_table()
            queue = ctx.clients.client("sqs").create_queue(QueueName=DEV_QUEUE)["QueueUrl"]
            _create_platform_ca(ctx, ca_file)
            env = {
                name: os.environ[name]
                for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            } | {"AWS_REGION": region, "KMSBRIDGE_TABLE": ctx.table}
            env["KMSBRIDGE_JOBS_QUEUE_URL"] = queue
            env["KMSBRIDGE_CA_FILE"] = ca_file
            ctx.emit({"endpoint": endpoint, "environment": env}, _exports(endpoint, env))
            ctx.flush()  # now, not at exit: the server runs until Ctrl-C
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the dev server is meant to stop
    sys.stderr.write("dev-server stopped; its state is gone\n")
    return 0


def _create_platform_ca(ctx: Context, ca_file: str) -> None:
    """A platform CA on a KMS signing key, so org add certifies KEKs and encrypt verifies
    them; its certificate is written where KMSBRIDGE_CA_FILE will point (the pin)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from kmsbridge.clock import utcnow
    from kmsbridge.keys.ca import KmsSigner, create_ca

    kms = ctx.clients.client("kms")
    arn = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    ca = create_ca(ctx.store, KmsSigner(kms, arn), now=utcnow())
    with open(ca_file, "wb") as out:
        out.write(ca.certificate.public_bytes(Encoding.PEM))


@contextmanager
def _ca_file() -> Iterator[str]:
    """A file for the CA certificate, gone with the dev server (so is the CA)."""
    handle, path = tempfile.mkstemp(prefix="kmsbridge-dev-ca-", suffix=".pem")
    os.close(handle)
    try:
        yield path
    finally:
        os.unlink(path)


def _exports(endpoint: str, env: dict[str, str]) -> str:
    lines = [
        f"kmsbridge dev-server: the embedded AWS on {endpoint} (Ctrl-C stops it)",
        "In another shell:",
        "",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "unset AWS_PROFILE AWS_SESSION_TOKEN",
    ]
    return "\n".join(lines)


def run_jobs_work(ctx: Context) -> int:
    from kmsbridge.errors import InternalError, InvalidRequest
    from kmsbridge.integrations.aws_lambda.jobs import job_table
    from kmsbridge.integrations.aws_lambda.worker import WorkSummary, work

    queue_url = ctx.option("queue_url") or os.environ.get("KMSBRIDGE_JOBS_QUEUE_URL")
    if not queue_url:
        raise InvalidRequest("name the queue: --queue-url URL or KMSBRIDGE_JOBS_QUEUE_URL")

    def progress(summary: WorkSummary) -> None:
        if ctx.output != "json":
            sys.stderr.write(f"jobs: {summary.done} done, {summary.failed} failed\n")

    try:
        summary = work(
            ctx.clients.client("sqs"),
            queue_url,
            job_table(ctx.services),
            once=ctx.args.once,
            on_batch=progress,
        )
    except KeyboardInterrupt:
        sys.stderr.write("jobs worker stopped\n")
        return 0
    ctx.emit(
        {"received": summary.received, "done": summary.done, "failed": summary.failed},
        f"processed {summary.received} message(s): {summary.done} done, {summary.failed} failed",
    )
    if summary.failed:
        raise InternalError(
            f"{summary.failed} message(s) failed; SQS delivers them again after the queue's "
            "visibility timeout (the worker's log lines above say why)"
        )
    return 0
