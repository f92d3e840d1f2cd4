"""``python -m bench [--quick] [--only NAME] [--output PATH]``: run every bench/bench_*.py.

Each module's ``run(quick)`` returns ``Result`` rows; a module that fails is reported and
the others still run. A full run writes BENCHMARKS.md (machine, versions, command, table);
a ``--quick`` smoke run writes nothing unless ``--output`` is given. The notes that follow
the table in BENCHMARKS.md are kept in bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import bench
from bench.common import Result, goal_met

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--only", action="append", help="run only bench_NAME (repeatable)")
    parser.add_argument("--output", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    results, failures = run_modules(module_names(args.only), args.quick)
    elapsed = time.perf_counter() - started
    table = render_table(results)
    print(table)
    for name, error in failures:
        print(f"FAILED {name}: {error.splitlines()[-1]}", file=sys.stderr)
    print(f"\n{len(results)} rows in {elapsed:.0f} s", file=sys.stderr)
    output = args.output or (None if args.quick else ROOT / "BENCHMARKS.md")
    if output is not None:
        command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
        output.write_text(render_report(command, table, failures, load, elapsed))
        print(f"wrote {output}", file=sys.stderr)
    return 1 if failures else 0


def module_names(only: list[str] | None) -> list[str]:
    names = sorted(
        info.name for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith("bench_")
    )
    if only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in only}
        names = [n for n in names if n in wanted]
    return names


def run_modules(names: list[str], quick: bool) -> tuple[list[Result], list[tuple[str, str]]]:
    results: list[Result] = []
    failures: list[tuple[str, str]] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            rows = list(module.run(quick=quick))
        except Exception:
            error = traceback.format_exc()
            print(error, file=sys.stderr)
            failures.append((name, error))
            continue
        results.extend(rows)
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return results, failures


def render_table(results: list[Result]) -> str:
    head = ["section", "what", "measured", "baseline (same run)", "ratio", "goal", "met"]
    rows = [head, ["---"] * len(head)]
    for r in results:
        met = goal_met(r)
        rows.append(
            [
                r.section,
                r.name,
                r.measured,
                r.baseline,
                "" if r.ratio is None else f"{r.ratio:.3g}x",
                r.goal,
                "" if met is None else ("yes" if met else "**NO**"),
            ]
        )
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def machine() -> list[str]:
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu == "unknown":
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("aes", "vaes", "vpclmulqdq", "pclmulqdq", "avx2", "avx512f")
    present = ", ".join(f for f in wanted if f in flags) or "none found"
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; flags: {present}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
    ]


def versions() -> list[str]:
    from cryptography.hazmat.backends.openssl.backend import backend

    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- cryptography {v('cryptography')} ({backend.openssl_version_text()})",
        f"- aws-encryption-sdk {v('aws-encryption-sdk')}, boto3 {v('boto3')}, moto {v('moto')}",
    ]


def render_report(
    command: str, table: str, failures: list[tuple[str, str]], load: float, elapsed: float
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` (`make bench`) on {when}, in {elapsed:.0f} s. Every ratio",
        "compares figures measured in the same run. Regenerate rather than edit by hand;",
        "the notes below the table are kept in `bench/NOTES.md`.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- load average when the run started: {load:.2f} (a shared machine: see notes)",
        "",
        "## Versions",
        "",
        *versions(),
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if failures:
        lines += ["## Failed modules", ""]
        lines += [f"- `{name}`: {error.strip().splitlines()[-1]}" for name, error in failures]
        lines.append("")
    notes = NOTES_PATH.read_text() if NOTES_PATH.exists() else ""
    return "\n".join(lines) + ("\n" + notes if notes else "")


NOTES_PATH = Path(__file__).with_name("NOTES.md")


if __name__ == "__main__":
    sys.exit(main())
