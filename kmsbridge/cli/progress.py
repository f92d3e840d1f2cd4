"""A progress bar for bulk commands: on stderr, and only when stderr is a terminal.

In a pipe, a log file or CI, nothing is drawn, so output stays clean to parse. Results
that a command prints while the bar is up go through ``Progress.print``, which clears the
bar first and redraws it after, so lines and bar never mix.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

_REDRAW_SECONDS = 0.1


class Progress:
    """``with Progress(total, "encrypting") as bar: ... bar.advance(name)``."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.done = 0
        self.note = ""
        self._now = now
        self._drawn_at = float("-inf")
        self._visible = False

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._clear()

    def advance(self, note: str = "", step: int = 1) -> None:
        """Count ``step`` more items done; ``note`` names the item (a file, an org)."""
        self.done = min(self.done + step, self.total) if self.total else self.done + step
        self.note = note
        self._draw(force=self.done == self.total)

    def print(self, text: str, file: TextIO | None = None) -> None:
        """Print a result line without tearing the bar."""
        self._clear()
        out = file if file is not None else sys.stdout
        out.write(text.rstrip("\n") + "\n")
        out.flush()
        self._draw(force=True)

    def render(self, width: int) -> str:
        """The bar as one line of at most ``width - 1`` characters."""
        counts = f"{self.done}/{self.total}" if self.total else str(self.done)
        fraction = self.done / self.total if self.total else 0.0
        bar_width = max(10, min(30, width // 4))
        filled = int(bar_width * fraction)
        bar = "#" * filled + "-" * (bar_width - filled)
        line = f"{self.label} [{bar}] {counts} {self.note}".rstrip()
        return line[: max(width - 1, 1)]

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        moment = self._now()
        if not force and moment - self._drawn_at < _REDRAW_SECONDS:
            return
        self._drawn_at = moment
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + self.render(width).ljust(width - 1))
        self.stream.flush()
        self._visible = True

    def _clear(self) -> None:
        if not self._visible:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + " " * (width - 1) + "\r")
        self.stream.flush()
        self._visible = False


Advance = Callable[[int, int, str], None]


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Advance]:
    """A bar, and the ``progress(done, total, name)`` callback the library calls per step."""
    with Progress(total, label) as bar:

        def advance(done: int, count: int, name: str) -> None:
            bar.total = count
            bar.advance(name, step=done - bar.done)

        yield advance


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream: treat as a pipe
        return False
