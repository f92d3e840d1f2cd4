"""CloudWatch metrics of the Lambda functions, as embedded-metric-format (EMF) lines on stdout.

Lambda sends stdout to CloudWatch Logs, which turns each EMF JSON line into metrics; no
agent, no API call, no dependency. Plain lines rather than Powertools for AWS Lambda: a
dozen lines of JSON do the job, and Powertools would add its package to the zip and its
import to every cold start (DESIGN.md's goals on both).

Per request: ``Requests`` (Count) and ``Duration`` (Milliseconds) with the dimensions
``Function``, ``Op`` and ``Outcome`` (``ok`` or an error code). Per container, on its first
event: ``ColdStart`` (Count) with the dimension ``Function``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

NAMESPACE = "kmsbridge"


def function_name() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")


def emit_request(op: str, outcome: str, duration_ms: float) -> None:
    emit(
        {"Function": function_name(), "Op": op, "Outcome": outcome},
        {"Requests": (1, "Count"), "Duration": (round(duration_ms, 3), "Milliseconds")},
    )


def emit_cold_start() -> None:
    emit({"Function": function_name()}, {"ColdStart": (1, "Count")})


def emit(dimensions: dict[str, str], metrics: dict[str, tuple[float, str]]) -> None:
    """One EMF line: the dimension values, the metric values, and the metadata naming them."""
    line: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
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
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()
