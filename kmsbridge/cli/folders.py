"""``encrypt`` and ``decrypt`` of a folder to a folder: each file on its own, a result each.

Every regular file under the input folder (recursively, in sorted order; names that start
with ``.`` are skipped, which includes the temporary files of an interrupted run) becomes
one file under the output folder at the same relative path: ``NAME.enc`` when encrypting,
``NAME`` without ``.enc`` when decrypting. Each output appears only once complete
(``atomic_output``). With ``--skip-existing`` a file whose output exists is skipped, so
an interrupted run resumes where it stopped (a partial output never exists). A file that
fails is reported with its error code and the rest go on; if any failed, the command ends
with one error line and the exit status of the first failure's code.

Every per-file result has one shape (``FileResult.as_dict``), shared with ``legacy decrypt``
of a zip or a folder: source, target, ok, skipped, recording, kek, bytes, error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kmsbridge.cli.base import Context, count_bytes
from kmsbridge.cli.progress import Progress
from kmsbridge.errors import InvalidRequest, KmsBridgeError, error_from_code


class Done(Protocol):
    """What one file's work returns (``RecordingInfo``, ``LegacyInfo``)."""

    @property
    def kek_id(self) -> str: ...

    @property
    def plaintext_bytes(self) -> int: ...


SUFFIX = ".enc"


@dataclass(frozen=True)
class FileResult:
    """One file of a bulk command: done, skipped, or failed with an error."""

    source: str
    target: str | None
    recording: str | None = None
    kek: str | None = None
    bytes: int | None = None
    skipped: bool = False
    error: KmsBridgeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "skipped": self.skipped,
            "recording": self.recording,
            "kek": self.kek,
            "bytes": self.bytes,
            "error": self.error.to_dict() if self.error else None,
        }

    def text(self) -> str:
        if self.error is not None:
            return f"FAILED  {self.source}: {self.error.code}: {self.error.message}"
        if self.skipped:
            return f"skipped {self.source} ({self.target} exists)"
        return f"ok      {self.source} -> {self.target} ({count_bytes(self.bytes or 0)})"


def files_under(root: Path, target: Path) -> list[Path]:
    """The regular, non-hidden files under ``root``, relative to it, in sorted order."""
    if root.resolve() == target.resolve() or root.resolve() in target.resolve().parents:
        raise InvalidRequest("the output folder must not be the input folder or inside it")
    if target.exists() and not target.is_dir():
        raise InvalidRequest(f"output {target} must be a folder when the input is a folder")
    target.mkdir(parents=True, exist_ok=True)
    return sorted(
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def encrypted_name(relative: Path) -> Path:
    return relative.with_name(relative.name + SUFFIX)


def decrypted_name(relative: Path) -> Path:
    return relative.with_name(relative.name.removesuffix(SUFFIX) or relative.name)


def recording_id_for(relative: Path, prefix: str | None) -> str:
    """The relative path in POSIX form, after ``prefix/`` when one is given."""
    name = relative.as_posix()
    return f"{prefix.rstrip('/')}/{name}" if prefix else name


def run_folder(
    ctx: Context,
    *,
    verb: str,
    rename: Callable[[Path], Path],
    one: Callable[[Path, Path, Path], Done],
) -> int:
    """Apply ``one(source, target, relative)`` to every file; report each, fail if any did."""
    root, out = Path(ctx.args.source), Path(ctx.args.target)
    relatives = files_under(root, out)
    skip = bool(getattr(ctx.args, "skip_existing", False))
    results: list[FileResult] = []
    made: set[Path] = {out}  # folders made (or found) already: one mkdir each, not per file
    with Progress(len(relatives), verb) as bar:
        for relative in relatives:
            source, target = root / relative, out / rename(relative)
            if skip and os.path.lexists(target):
                result = FileResult(str(source), str(target), skipped=True)
            else:
                result = _one_file(source, target, relative, one, made)
            results.append(result)
            if ctx.output == "text":
                bar.print(result.text())
            bar.advance(relative.as_posix())
    report_results(ctx, results, verb)
    return 0


def report_results(ctx: Context, results: list[FileResult], verb: str) -> None:
    """The summary (JSON: every result); if any failed, the first failure's error."""
    failed = [r for r in results if r.error is not None]
    skipped = sum(r.skipped for r in results)
    done = len(results) - len(failed) - skipped
    ctx.emit(
        {
            "files": [r.as_dict() for r in results],
            "ok": done,
            "skipped": skipped,
            "failed": len(failed),
        },
        f"{verb}: {done} of {len(results)} files ok"
        + (f", {skipped} skipped" if skipped else "")
        + (f", {len(failed)} failed" if failed else ""),
    )
    if failed:
        first = failed[0]
        assert first.error is not None
        raise error_from_code(
            first.error.code,
            f"{len(failed)} of {len(results)} files failed; first: {first.source}: "
            f"{first.error.message}",
        )


def _one_file(
    source: Path,
    target: Path,
    relative: Path,
    one: Callable[[Path, Path, Path], Done],
    made: set[Path],
) -> FileResult:
    try:
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        info = one(source, target, relative)
    except KmsBridgeError as exc:
        return FileResult(str(source), str(target), error=exc)
    except OSError as exc:
        code = "NOT_FOUND" if isinstance(exc, FileNotFoundError) else "INVALID_REQUEST"
        error = error_from_code(code, exc.strerror or type(exc).__name__)
        return FileResult(str(source), str(target), error=error)
    return FileResult(
        str(source),
        str(target),
        recording=getattr(info, "recording_id", None) or getattr(info, "name", None),
        kek=info.kek_id,
        bytes=info.plaintext_bytes,
    )
