"""Running ``kmsbridge`` as a user does, in a subprocess, and checking how it failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmsbridge.cli import exit_codes


@dataclass(frozen=True)
class Run:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    def json(self) -> Any:
        return json.loads(self.out)


def kmsbridge(
    *argv: str | Path,
    table: str | None = None,
    env: dict[str, str | None] | None = None,
    stdin: bytes | None = None,
    timeout: float = 120,
) -> Run:
    """``python -m kmsbridge.cli.main ARGV``; the moto server's endpoint comes from os.environ."""
    environ = {**os.environ, **({"KMSBRIDGE_TABLE": table} if table else {})}
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    done = subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *map(str, argv)],
        input=stdin,
        capture_output=True,
        env=environ,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr.decode())


def assert_fails(run: Run, code: str, *, json_output: bool = False) -> str:
    """The named exit status, one line on stderr, and under --output json the error object
    on stdout; returns the message."""
    assert run.code == exit_codes.BY_ERROR_CODE[code], run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), run.err
    assert "Traceback" not in run.err
    message = lines[0].removeprefix(f"error: {code}: ")
    if json_output:
        body = run.json()
        assert body["ok"] is False and body["error"]["code"] == code, body
        assert body["error"]["message"] == message
        assert isinstance(body["error"]["retryable"], bool)
    else:
        assert run.out == b"" or not run.out.startswith(b"{"), run.out
    return message


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted write might leave (there must be none)."""
    return sorted(p.name for p in folder.rglob("*.part"))
