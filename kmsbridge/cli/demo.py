"""``kmsbridge demo``: the whole story on an embedded AWS (moto's server on 127.0.0.1).

It needs no credentials and no network beyond loopback, and never touches a real AWS
account: the global AWS options are ignored. The story itself is ``kmsbridge.demo``; this
module chooses how playback and rotation are done (the seams ``player_factory`` and
``rotate``) and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kmsbridge.cli.base import Context, add_command


def register(subparsers: Any) -> None:
    demo = add_command(
        subparsers,
        "demo",
        "the whole story on an embedded AWS (moto on 127.0.0.1): no credentials needed",
        description=(
            "Create a customer KMS key, add an org, encrypt a synthetic call with the public "
            "key only, play it back, revoke the key, restore it, rotate the KEK. Real calls "
            "on moto's server on 127.0.0.1, started and stopped by the demo; the global AWS "
            "options are ignored. With --output json the story goes to stderr and a JSON "
            "summary to stdout."
        ),
    )
    demo.add_argument(
        "--max-age",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="the decryptor's cache age, waited for in real time (0-30, default 2)",
    )
    demo.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the synthetic call, its encrypted recordings and the bundle in DIR",
    )
    demo.set_defaults(handler=run_demo)


def run_demo(ctx: Context) -> int:
    from kmsbridge import demo

    story_out = sys.stderr if ctx.output == "json" else sys.stdout
    outcomes = demo.run(
        story_out,
        player_factory=demo.DecryptorPlayer,
        rotate=demo.rotate_active_kek,
        max_age=ctx.args.max_age,
        keep=ctx.args.keep,
    )
    ctx.emit({"ok": True, "steps": [{"step": o.step, "result": o.result} for o in outcomes]}, "")
    return 0
