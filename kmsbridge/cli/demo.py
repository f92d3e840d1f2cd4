"""``kmsbridge demo``: the whole story on an embedded AWS (moto's server on 127.0.0.1).

It needs no credentials and no network beyond loopback, and never touches a real AWS
account: the global AWS options are ignored. The story itself is ``kmsbridge.devtools.demo``; this
module chooses how playback and rotation are done (the seams ``player_factory`` and
``rotate``) and prints.

Playback goes through the real decryptor Lambda handler when its file is there:
``lambda/decryptor/handler.py`` of the source tree this kmsbridge runs from (a checkout,
or the editable install ``make`` makes). It is loaded by path, because the library never
imports ``lambda/``; the demo, being the CLI's story, may. An installed package without
the source tree has no handler file: the demo then says so and plays through the
library's ``Decryptor``, which is what the handler calls.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kmsbridge.cli.base import Context, add_command

if TYPE_CHECKING:
    from kmsbridge.devtools.demo import DemoWorld, Player
    from kmsbridge.recordings.codec import RecordingInfo

HANDLER_FILE = Path("lambda") / "decryptor" / "handler.py"


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
    if importlib.util.find_spec("moto") is None:
        from kmsbridge.errors import InvalidRequest

        raise InvalidRequest(
            "the demo runs on moto, which is not installed here: "
            "pip install 'moto[server]==5.2.5' (or use make demo)"
        )
    from kmsbridge.devtools import demo

    story_out = sys.stderr if ctx.output == "json" else sys.stdout
    outcomes = demo.run(
        story_out,
        player_factory=choose_player,
        rotate=demo.rotate_active_kek,
        max_age=ctx.args.max_age,
        keep=ctx.args.keep,
    )
    ctx.emit({"ok": True, "steps": [{"step": o.step, "result": o.result} for o in outcomes]}, "")
    return 0


def source_tree_handler() -> Path | None:
    """``lambda/decryptor/handler.py`` beside the ``kmsbridge`` package, if it is there."""
    import kmsbridge

    candidate = Path(kmsbridge.__file__).resolve().parent.parent / HANDLER_FILE
    return candidate if candidate.is_file() else None


def choose_player(world: DemoWorld, max_age: float) -> Player:
    from kmsbridge.devtools.demo import DecryptorPlayer

    path = source_tree_handler()
    if path is None:
        world.narrator.detail(
            f"{HANDLER_FILE} is not beside this installation, so playback "
            "goes through the library's Decryptor, which is what the handler calls"
        )
        return DecryptorPlayer(world, max_age)
    return HandlerPlayer(world, path)


@dataclass(frozen=True)
class _LambdaContext:
    aws_request_id: str
    function_name: str = "kmsbridge-decryptor"


class HandlerPlayer:
    """Playback through the decryptor Lambda's handler and the playback client.

    The client (``LambdaDataKeySource``) always sends an ephemeral public key and opens
    the sealed data key; its invoker calls the handler in this process with the event and
    the response passed through JSON, as Lambda passes them. The handler reads its
    settings (KMSBRIDGE_TABLE, KMSBRIDGE_MAX_AGE_SECONDS) from the environment the story
    sets, and reaches the embedded AWS through AWS_ENDPOINT_URL.
    """

    def __init__(self, world: DemoWorld, path: Path) -> None:
        from kmsbridge.integrations.aws_lambda.client import LambdaDataKeySource

        self.world = world
        self.description = (
            f"the decryptor Lambda's handler ({HANDLER_FILE}) and the playback client: "
            "the data key comes back sealed to a one-time X25519 key (HPKE)"
        )
        with redirect_stdout(io.StringIO()):  # the module sets up logging on import
            self.handler = _load(path).handler
        # In Lambda the audit lines go to stdout; here the story shows them (once).
        audit_log = logging.getLogger("kmsbridge.audit")
        for handler in [h for h in audit_log.handlers if type(h).__name__ == "_StdoutHandler"]:
            audit_log.removeHandler(handler)
        self.requests = 0
        self.data_keys = LambdaDataKeySource("kmsbridge-decryptor", invoker=self._invoke)

    def play(self, org: str, source: Path, target: Path) -> RecordingInfo:
        from kmsbridge.recordings.codec import decrypt_file

        return decrypt_file(source, target, org=org, data_keys=self.data_keys)

    def _invoke(self, event: dict[str, Any]) -> Any:
        self.requests += 1
        printed = io.StringIO()  # the function's stdout: audit lines and metrics (EMF)
        with redirect_stdout(printed):
            response = self.handler(
                json.loads(json.dumps(event)), _LambdaContext(f"demo-{self.requests}")
            )
        for line in printed.getvalue().splitlines():
            self._show(line)
        return json.loads(json.dumps(response))

    def _show(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "audit" in record:
            return  # the story shows audit lines as the decryptor logs them
        if isinstance(record, dict) and "_aws" in record:
            names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            values = ", ".join(f"{n}={record[n]}" for n in names)
            tags = ", ".join(f"{k}={v}" for k, v in record.items() if isinstance(v, str))
            self.world.narrator.detail(f"metric: {values} ({tags})")
            return
        self.world.narrator.detail(f"lambda: {line}")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("kmsbridge_demo_decryptor_handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
