"""``encrypt`` and ``decrypt`` of a folder to a folder: each file on its own, a result each.

Every regular file under the input folder (recursively, in sorted order; names that start
with ``.`` are skipped, which includes the temporary files of an interrupted run) becomes
one file under the output folder at the same relative path: ``NAME.enc`` when encrypting,
``NAME`` without ``.enc`` when decrypting. Each output appears only once complete
(``atomic_output``). A file that fails is reported with its error code and the rest go
on; if any failed, the command ends with one error line and the exit status of the first
failure's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmsbridge.cli.base import Context
from kmsbridge.cli.progress import Progress
from kmsbridge.errors import InvalidRequest, KmsBridgeError, error_from_code
from kmsbridge.recordings.codec import RecordingInfo

SUFFIX = ".enc"


@dataclass(frozen=True)
class FileResult:
    source: str
    target: str
    code: str = "ok"
    message: str | None = None
    recording: str | None = None
    kek: str | None = None
    bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


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
    one: Callable[[Path, Path, Path], RecordingInfo],
) -> int:
    """Apply ``one(source, target, relative)`` to every file; report each, fail if any did."""
    root, out = Path(ctx.args.source), Path(ctx.args.target)
    relatives = files_under(root, out)
    results: list[FileResult] = []
    made: set[Path] = {out}  # folders made (or found) already: one mkdir each, not per file
    with Progress(len(relatives), verb) as bar:
        for relative in relatives:
            result = _one_file(root / relative, out / rename(relative), relative, one, made)
            results.append(result)
            if ctx.output == "text":
                bar.print(_text(result))
            bar.advance(relative.as_posix())
    failed = [r for r in results if r.code != "ok"]
    ctx.emit(
        {
            "files": [r.as_dict() for r in results],
            "ok": len(results) - len(failed),
            "failed": len(failed),
        },
        f"{verb}: {len(results) - len(failed)} of {len(results)} files ok",
    )
    if failed:
        first = failed[0]
        raise error_from_code(
            first.code,
            f"{len(failed)} of {len(results)} files failed; first: {first.source}: {first.message}",
        )
    return 0


def _one_file(
    source: Path,
    target: Path,
    relative: Path,
    one: Callable[[Path, Path, Path], RecordingInfo],
    made: set[Path],
) -> FileResult:
    try:
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        info = one(source, target, relative)
    except KmsBridgeError as exc:
        return FileResult(str(source), str(target), exc.code, exc.message)
    except OSError as exc:
        code = "NOT_FOUND" if isinstance(exc, FileNotFoundError) else "INVALID_REQUEST"
        return FileResult(str(source), str(target), code, exc.strerror or type(exc).__name__)
    return FileResult(
        str(source),
        str(target),
        recording=info.recording_id,
        kek=info.kek_id,
        bytes=info.plaintext_bytes,
    )


def _text(result: FileResult) -> str:
    if result.code == "ok":
        return f"ok      {result.source} -> {result.target} ({result.bytes} bytes)"
    return f"FAILED  {result.source}: {result.code}: {result.message}"
