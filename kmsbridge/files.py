"""Safe outputs: a file appears whole or not at all, readable only by its owner."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kmsbridge.errors import InvalidRequest


@contextmanager
def atomic_output(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A 0600 temporary file beside ``target``, renamed onto it only if the block succeeds."""
    target_path = Path(target)
    directory = target_path.parent if str(target_path.parent) else Path(".")
    if target_path.is_dir():
        raise InvalidRequest(f"output {target_path} is a directory")
    fd, temp_name = _make_temp(directory, target_path.name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, target_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _make_temp(directory: Path, name: str) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except FileNotFoundError:
        raise InvalidRequest(f"output directory {directory} does not exist") from None
