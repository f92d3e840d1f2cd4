"""The jobs Lambda, fed by SQS: ``handler.handler``. The work is in ``kmsbridge.jobs``.

Each message body is ``{"type": ..., ...}``; ``JOBS`` maps a type to its function (adding
a type is one line). Failed messages are reported as batch item failures, so SQS
redelivers only those. Environment: KMSBRIDGE_TABLE; clients are made on the first
message and reused while the container is warm.
"""

from __future__ import annotations

import logging
from typing import Any

from kmsbridge.jobs import JobTable, Services, process_batch, run_rewrap

logging.getLogger("kmsbridge").setLevel(logging.INFO)
services = Services()

JOBS: JobTable = {
    "rewrap": lambda body: run_rewrap(services.store, services.kms, body),
}


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    return process_batch(event, JOBS)
