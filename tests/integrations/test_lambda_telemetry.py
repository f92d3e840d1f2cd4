"""The per-request EMF line from its template is exactly the line ``emit`` would write."""

from __future__ import annotations

import json
import time

import pytest

from kmsbridge.integrations.aws_lambda import telemetry


@pytest.mark.parametrize(
    ("op", "outcome", "duration"),
    [("unwrap", "ok", 0.4567891), ("invalid", "INVALID_REQUEST", 12.0), ("decrypt", "ok", 0)],
)
def test_request_line_is_emits_line(
    op: str,
    outcome: str,
    duration: float,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1796000000.123)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", 'decryptor "blue"')
    telemetry.emit_request(op, outcome, duration)
    telemetry.emit(
        {"Function": 'decryptor "blue"', "Op": op, "Outcome": outcome},
        {"Requests": (1, "Count"), "Duration": (round(duration, 3), "Milliseconds")},
    )
    fast, reference = capsys.readouterr().out.splitlines()
    assert fast == reference
    line = json.loads(fast)
    assert line["Duration"] == round(duration, 3) and line["_aws"]["Timestamp"] == 1796000000123
