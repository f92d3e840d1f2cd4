"""The jobs Lambda, fed by SQS: ``handler.handler``.

The work is in ``kmsbridge.integrations.aws_lambda.jobs`` and ``kmsbridge.export.job``.

Each message body is ``{"type": ..., ...}``; ``JOBS`` maps a type to its function (adding
a type is one line). Failed messages are reported as batch item failures, so SQS
redelivers only those. Environment: KMSBRIDGE_TABLE, KMSBRIDGE_MAX_AGE_SECONDS; clients
are made on the first message and reused while the container is warm.
"""

from __future__ import annotations

from typing import Any

from kmsbridge.export.job import process_export_batch
from kmsbridge.integrations.aws_lambda.jobs import JobTable, process_batch, run_rewrap
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging
from kmsbridge.services import Services

configure_logging()
services = Services()

JOBS: JobTable = {
    "rewrap": lambda body: run_rewrap(services.store, services.kms, body),
    "export": lambda body: process_export_batch(
        body, clients=services.clients, decryptor=services.decryptor
    ),
}


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    return process_batch(event, JOBS)
