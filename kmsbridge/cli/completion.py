"""``kmsbridge completion bash|zsh|tcsh``: a shell completion script, generated from the parser.

The script is static (shtab writes it from the same argparse tree ``--help`` uses), so a
TAB press runs no Python at all. Install it once, for example:

    kmsbridge completion bash > ~/.local/share/bash-completion/completions/kmsbridge
    kmsbridge completion zsh > "${fpath[1]}/_kmsbridge"
"""

from __future__ import annotations

import sys
from typing import Any

from kmsbridge.cli.base import Context, add_command

SHELLS = ("bash", "zsh", "tcsh")


def register(subparsers: Any) -> None:
    completion = add_command(
        subparsers,
        "completion",
        "print a shell completion script (bash, zsh or tcsh)",
        examples="  kmsbridge completion bash \\\n"
        "      > ~/.local/share/bash-completion/completions/kmsbridge\n"
        '  kmsbridge completion zsh > "${fpath[1]}/_kmsbridge"',
    )
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(handler=print_script)


def print_script(ctx: Context) -> int:
    import shtab

    from kmsbridge.cli.main import build_parser

    script: str = shtab.complete(build_parser(), shell=ctx.args.shell)
    sys.stdout.write(script.rstrip("\n") + "\n")
    return 0
