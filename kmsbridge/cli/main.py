"""``kmsbridge``: parse, run one command, map failures to one line and a named exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from kmsbridge import __version__
from kmsbridge.cli import exit_codes
from kmsbridge.cli.base import COMMON, Context, Parser, UsageError, write_json

# Command modules, in the order --help lists them. Each has register(subparsers) and
# imports nothing heavy at module level.
COMMAND_MODULES = (
    "demo",
    "table",
    "org",
    "kek",
    "keys",
    "ca",
    "crypt",
    "access",
    "legacy",
    "export",
    "lkm",
    "lambda_cmd",
    "dev",
    "completion",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kmsbridge",
        parents=[COMMON],
        description="Customer-held AWS KMS keys for encrypted call recordings.",
        epilog=exit_status_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kmsbridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"kmsbridge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kmsbridge.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_output = wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return fail(None, "INVALID_REQUEST", exc.message, debug=False, json_output=json_output)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        # The ESDK logs its own failures with tracebacks; our one line says what happened.
        logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    return run(args, debug)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--output json`` was asked for, read before parsing (for usage errors too)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--output=json" or (arg == "--output" and argv[i + 1 : i + 2] == ["json"]):
            return True
    return False


def run(args: argparse.Namespace, debug: bool) -> int:
    from kmsbridge.errors import ConfigurationError, KmsBridgeError

    ctx = Context(args)
    try:
        status = args.handler(ctx)
        ctx.flush()
        return int(status or exit_codes.OK)
    except ConfigurationError as exc:
        return fail(ctx, exc.code, f"{exc.message} ({ctx.describe_settings()})", debug)
    except KmsBridgeError as exc:
        return fail(ctx, exc.code, exc.message, debug, retryable=exc.retryable)
    except FileNotFoundError as exc:
        return fail(ctx, "NOT_FOUND", f"{exc.filename} does not exist", debug)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        return fail(ctx, "INVALID_REQUEST", f"{exc.filename}: {exc.strerror}", debug)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # `kmsbridge ... | head`: the reader left
            return quiet_broken_pipe()
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(ctx, "INTERNAL", f"{where}{exc.strerror or type(exc).__name__}", debug)
    except KeyboardInterrupt:
        return fail(ctx, "INTERRUPTED", "stopped by the user", debug=False)
    except Exception as exc:
        name = type(exc).__name__  # never str(exc): it might quote data
        return fail(ctx, "INTERNAL", f"unexpected {name} (run with --debug for details)", debug)


def quiet_broken_pipe() -> int:
    # Python would complain again when it flushes stdout at exit; point it at devnull.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return exit_codes.INTERNAL


def exit_status_help() -> str:
    """The named exit statuses, for the end of ``kmsbridge --help``."""
    by_status = sorted(exit_codes.BY_ERROR_CODE.items(), key=lambda item: item[1])
    notes = {exit_codes.USAGE: " (and usage errors)"}
    rows = [f"  {status:3d}  {code}{notes.get(status, '')}" for code, status in by_status]
    rows.append(f"  {exit_codes.INTERRUPTED:3d}  INTERRUPTED (Ctrl-C)")
    return "exit status:\n    0  OK\n" + "\n".join(rows)


def fail(
    ctx: Context | None,
    code: str,
    message: str,
    debug: bool,
    *,
    retryable: bool = False,
    json_output: bool | None = None,
) -> int:
    """One line on stderr; under ``--output json`` also the error object (with any result)."""
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"error: {code}: {message}\n")
    sys.stderr.flush()
    error = {"code": code, "message": message, "retryable": retryable}
    if ctx is not None and ctx.output == "json":
        ctx.flush({"ok": False, "error": error})
    elif ctx is None and json_output:
        write_json(sys.stdout, {"ok": False, "error": error})
    if code == "INTERRUPTED":
        return exit_codes.INTERRUPTED
    return exit_codes.BY_ERROR_CODE.get(code, exit_codes.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
