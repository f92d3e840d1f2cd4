"""The jobs Lambda, fed by SQS: ``handler.handler``.

The work is in ``kmsbridge.integrations.aws_lambda.jobs`` and ``kmsbridge.export.job``.

Each message body is ``{"type": ..., ...}``; ``JOBS`` maps a type to its function
(``job_table``: adding a type is one line there; ``kmsbridge jobs work`` uses the same).
Failed messages are reported as batch item failures, so SQS redelivers only those.
Environment: KMSBRIDGE_TABLE, KMSBRIDGE_MAX_AGE_SECONDS, KMSBRIDGE_EXPORT_BUCKET (an
export to any other bucket is refused); clients are made on the first message and
reused while the container is warm.
"""

from __future__ import annotations

from typing import Any

from kmsbridge.integrations.aws_lambda.jobs import JobTable, job_table, process_batch
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging
from kmsbridge.services import Services

configure_logging()
services = Services()

JOBS: JobTable = job_table(services)


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    return process_batch(event, JOBS)
