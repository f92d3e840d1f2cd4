"""``kmsbridge lambda build -o dist/ [--arch x86_64|arm64] [--python-version 3.13]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "lambda", "Lambda functions: build their deployment zips")
    build = add_command(
        group,
        "build",
        "build dist/decryptor.zip (and rotation.zip, jobs.zip when their handlers exist)",
        examples="  kmsbridge lambda build -o dist/\n"
        "  kmsbridge lambda build -o dist/ --arch arm64",
    )
    build.add_argument("-o", "--out", default="dist", help="output folder (default: dist/)")
    build.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    build.add_argument(
        "--python-version",
        choices=("3.12", "3.13"),
        default="3.13",
        help="the Lambda runtime's Python (Terraform's lambda_runtime; default 3.13)",
    )
    build.set_defaults(handler=run_build)


def run_build(ctx: Context) -> int:
    from kmsbridge.cli.progress import progress_bar
    from kmsbridge.integrations.aws_lambda.build import build

    with progress_bar(0, "building") as advance:
        built = build(
            Path(ctx.args.out),
            ctx.args.arch,
            python_version=ctx.args.python_version,
            progress=advance,
        )
    ctx.emit(
        {
            "zips": [
                {"name": b.name, "path": str(b.path), "bytes": b.size, "sha256": b.sha256}
                for b in built
            ]
        },
        "\n".join(f"{b.path}  {b.size / 1e6:.2f} MB  sha256 {b.sha256}" for b in built),
    )
    return 0
