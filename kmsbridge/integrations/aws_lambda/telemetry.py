"""Telemetry of the Lambda functions: metrics as embedded-metric-format (EMF) lines on
stdout, and the logging set-up that keeps audit lines one JSON line each.

Lambda sends stdout to CloudWatch Logs, which turns each EMF JSON line into metrics; no
agent, no API call, no dependency. Plain lines rather than Powertools for AWS Lambda: a
dozen lines of JSON do the job, and Powertools would add its package to the zip and its
import to every cold start, both measured in bench/bench_lambda.py.

Per request: ``Requests`` (Count) and ``Duration`` (Milliseconds) with the dimensions
``Function``, ``Op`` and ``Outcome`` (``ok`` or an error code). Per container, on its first
event: ``ColdStart`` (Count) with the dimension ``Function``. Per event that a function
which cannot start (bad settings) refuses: ``StartFailures`` (Count), ``Function``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from typing import Any

NAMESPACE = "kmsbridge"


def function_name() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")


def emit_request(op: str, outcome: str, duration_ms: float) -> None:
    """The request's EMF line, ``emit``'s output to the byte, from a per-kind template.

    Only the duration and the timestamp change from one request to the next; the rest is
    serialized once per (function, op, outcome) instead of on every request. Lines are not
    batched across requests: Lambda may freeze or end the environment after any response.
    """
    head, tail = _request_template(function_name(), op, outcome)
    duration = json.dumps(round(duration_ms, 3))
    sys.stdout.write(f"{head}{duration}{tail}{int(time.time() * 1000)}}}}}\n")
    sys.stdout.flush()


@functools.lru_cache(maxsize=256)
def _request_template(function: str, op: str, outcome: str) -> tuple[str, str]:
    dimensions = {"Function": function, "Op": op, "Outcome": outcome}
    metrics: dict[str, tuple[float, str]] = {
        "Requests": (1, "Count"),
        "Duration": (0, "Milliseconds"),
    }
    line = json.dumps(_document(dimensions, metrics, _MARK), sort_keys=True)
    head, _, rest = line.partition('"Duration": 0, ')
    tail, _, _ = rest.partition(f"{_MARK}}}}}")
    return head + '"Duration": ', ", " + tail


def emit_cold_start() -> None:
    emit({"Function": function_name()}, {"ColdStart": (1, "Count")})


def emit_start_failure() -> None:
    emit({"Function": function_name()}, {"StartFailures": (1, "Count")})


def emit(dimensions: dict[str, str], metrics: dict[str, tuple[float, str]]) -> None:
    """One EMF line: the dimension values, the metric values, and the metadata naming them."""
    line = _document(dimensions, metrics, int(time.time() * 1000))
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


_MARK = -7  # a timestamp no real line has, to cut the template at


def _document(
    dimensions: dict[str, str], metrics: dict[str, tuple[float, str]], timestamp: int
) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": n, "Unit": unit} for n, (_, unit) in metrics.items()],
                }
            ],
        },
        **dimensions,
        **{name: value for name, (value, _) in metrics.items()},
    }


def configure_logging() -> None:
    """Audit and error lines to stdout, one line each, not through the root logger.

    The runtime's root handler prefixes level, time and request id, which would break the
    JSON lines. botocore and urllib3 log request and response bodies at DEBUG (a KMS
    Decrypt response carries key material), so they stay at WARNING whatever the
    function's log level. The ESDK logs its own failures with tracebacks; ours say what
    happened.
    """
    for name in ("kmsbridge.audit", "kmsbridge.lambda"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
            handler = _StdoutHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (the runtime replaces it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass
