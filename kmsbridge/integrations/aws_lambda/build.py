"""Deployment zips of the Lambda functions: ``kmsbridge lambda build`` / ``lambda/build.py``.

Each ``dist/<name>.zip`` holds ``lambda/<name>/handler.py`` at its root (Lambda loads
``handler.handler``), the ``kmsbridge`` package beside it, and the runtime dependencies
as manylinux wheels for the Lambda Python runtime (3.13 by default, the Terraform
modules' ``lambda_runtime``) on x86_64 or arm64, installed by
``pip install --target --platform --only-binary=:all: --no-deps``: the closure of
kmsbridge's dependencies, at the versions installed in the building
environment (the ones the tests ran with).

Not in the zip:
- boto3 and its dependencies. The Lambda runtime provides them, and AWS keeps them
  patched; kmsbridge needs only long-stable calls (boto3 >= 1.35, which every current
  python3.11 runtime exceeds). Vendoring them would add about 14 MB to every zip and
  nothing to what the function can do.
- What the function never imports: the CLI, the build itself, the moto-based embedded
  AWS, caches and bytecode (``__pycache__``, ``*.pyc``) and type stubs.
- pysequoia (the OpenPGP library of the PGP export target, a 9 MB native module) in any
  zip but ``jobs.zip``: only the bulk export job encrypts for PGP recipients; pyasn1 and
  pyasn1-modules in any zip but ``rotation.zip``: only rotation issues KEK certificates
  (``HANDLER_ONLY_DEPENDENCIES``).

Deterministic: entries sorted, fixed timestamps and permissions, so the same sources and
wheels give the same zip, byte for byte.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kmsbridge.errors import InternalError, InvalidRequest

HANDLERS = ("decryptor", "rotation", "jobs", "lkm")
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
# The Lambda runtimes the zips may target (python3.11 is deprecated by AWS Lambda).
PYTHON_VERSIONS = ("3.12", "3.13")
PYTHON_VERSION = "3.13"
# boto3's closure: present in every Lambda Python runtime.
PROVIDED_BY_RUNTIME = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# Distributions (with no dependencies of their own) that only some handlers import.
HANDLER_ONLY_DEPENDENCIES = {
    "pysequoia": frozenset({"jobs"}),
    # Issuing KEK certificates (crypto/certificates.py) is the rotation function's alone.
    "pyasn1": frozenset({"rotation"}),
    "pyasn1-modules": frozenset({"rotation"}),
}
# Needed by the command line only (kmsbridge/cli/ is not in the zips either).
CLI_ONLY = frozenset({"shtab"})
EXCLUDED_PACKAGE_PATHS = (
    "kmsbridge/cli/",
    "kmsbridge/devtools/",
    "kmsbridge/integrations/aws_lambda/build.py",
)
LAMBDA_MARKERS = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".pyi")
_INSTALL_RECORDS = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class BuiltZip:
    name: str
    path: Path
    size: int
    sha256: str


def host_arch() -> str:
    """The Lambda architecture name of this machine (tests run the zip here)."""
    machine = os.uname().machine
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def source_root() -> Path:
    """The checkout whose ``lambda/`` folder holds the handlers (beside this package)."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (candidate / "lambda").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise InvalidRequest("run the build from a kmsbridge checkout (no lambda/ folder found)")


def build(
    out_dir: Path,
    arch: str = "x86_64",
    root: Path | None = None,
    python_version: str = PYTHON_VERSION,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[BuiltZip]:
    """One zip per handler folder that exists; returns what was written.

    ``python_version`` is the Lambda runtime's ("3.13" for python3.13): compiled wheels
    are per Python version, so a zip built for one does not import on another. Tests also
    build for this machine's interpreter, to run the zip here. ``progress(done, total,
    step)`` follows the steps: the dependencies, then each zip.
    """
    if arch not in PLATFORMS:
        raise InvalidRequest(f"--arch must be one of {', '.join(PLATFORMS)}")
    if not re.fullmatch(r"3\.1[0-9]", python_version):
        raise InvalidRequest(f"--python-version must be one of {', '.join(PYTHON_VERSIONS)}")
    root = root or source_root()
    handlers = [h for h in HANDLERS if (root / "lambda" / h / "handler.py").is_file()]
    if not handlers:
        raise InvalidRequest(f"no lambda/<name>/handler.py under {root}")
    out_dir.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda done, total, name: None)
    with tempfile.TemporaryDirectory(prefix="kmsbridge-build-") as tmp:
        deps = Path(tmp) / "deps"
        step(0, len(handlers) + 1, "installing dependencies")
        requirements = runtime_requirements(root, arch, python_version)
        install_dependencies(deps, arch, requirements, python_version)
        step(1, len(handlers) + 1, "dependencies installed")
        shared = package_files(root) | dependency_files(deps)
        built = []
        for n, name in enumerate(handlers, 2):
            files = {"handler.py": root / "lambda" / name / "handler.py", **shared}
            files = {a: p for a, p in files.items() if _needed_by(a, name)}
            built.append(write_zip(out_dir / f"{name}.zip", files, name))
            step(n, len(handlers) + 1, f"{name}.zip")
        return built


def runtime_requirements(
    root: Path, arch: str = "x86_64", python_version: str = PYTHON_VERSION
) -> list[str]:
    """kmsbridge's dependencies and theirs, ``name==version`` as installed here, minus
    what the Lambda runtime provides (so pip fetches only what the zip carries)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    todo = [_dist_name(r) for r in project["dependencies"]]
    pins: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in pins or name in PROVIDED_BY_RUNTIME or name in CLI_ONLY:
            continue
        try:
            pins[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise InvalidRequest(
                f"install kmsbridge's dependencies first ({name} is missing)"
            ) from None
        todo += [
            _dist_name(r)
            for r in importlib.metadata.requires(name) or []
            if _applies(r, arch, python_version)
        ]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _applies(requirement: str, arch: str, python_version: str = PYTHON_VERSION) -> bool:
    """Whether a dependency's environment marker holds on the Lambda runtime."""
    _, _, marker = requirement.partition(";")
    if not marker.strip():
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # pip's own copy; pip is needed for the build anyway
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment]
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    environment = LAMBDA_MARKERS | {
        "platform_machine": machine,
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "extra": "",
    }
    return bool(Marker(marker).evaluate(environment))


def install_dependencies(
    target: Path, arch: str, requirements: list[str], python_version: str = PYTHON_VERSION
) -> None:
    """pip install exactly these manylinux wheels (no resolution: the pins are complete)."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target), "--platform", PLATFORMS[arch], "--implementation", "cp",
        "--python-version", python_version, "--only-binary=:all:", "--no-compile", "--no-deps",
        *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InternalError(
            f"pip could not install {PLATFORMS[arch]} wheels for Python {python_version}: "
            + (result.stderr.strip().splitlines() or ["no output"])[-1]
        )


def package_files(root: Path) -> dict[str, Path]:
    package = root / "kmsbridge"
    files = {}
    for path in package.rglob("*"):
        arcname = path.relative_to(root).as_posix()
        if path.is_file() and _wanted(arcname) and not arcname.startswith(EXCLUDED_PACKAGE_PATHS):
            files[arcname] = path
    return files


def dependency_files(deps: Path) -> dict[str, Path]:
    files = {}
    for path in deps.rglob("*"):
        arcname = path.relative_to(deps).as_posix()
        if path.is_file() and _wanted(arcname) and not arcname.startswith("bin/"):
            files[arcname] = path
    return files


def _wanted(arcname: str) -> bool:
    parts = arcname.split("/")
    if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALL_RECORDS:
        return False  # pip's install records name temporary paths: not reproducible, not needed
    return "__pycache__" not in parts and not arcname.endswith(_EXCLUDED_SUFFIXES)


def write_zip(path: Path, files: dict[str, Path], name: str) -> BuiltZip:
    """Sorted entries, fixed time and mode: equal inputs give an equal zip."""
    temp = path.with_suffix(".zip.part")
    with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for arcname in sorted(files):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[arcname].read_bytes(), compresslevel=9)
    temp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return BuiltZip(name, path, path.stat().st_size, digest)


def _needed_by(arcname: str, handler: str) -> bool:
    """False for a file of a distribution that ``handler`` never imports."""
    top = arcname.split("/", 1)[0]
    name = _normalize(top.split("-", 1)[0] if top.endswith(".dist-info") else top)
    return handler in HANDLER_ONLY_DEPENDENCIES.get(name, frozenset({handler}))


def _dist_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    return _normalize(match.group(0) if match else requirement)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str] | None = None) -> int:
    """``python lambda/build.py -o dist/ [--arch x86_64|arm64] [--python-version 3.13]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Build the Lambda deployment zips.")
    parser.add_argument("-o", "--out", default="dist", help="output folder (default dist/)")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--python-version", choices=PYTHON_VERSIONS, default=PYTHON_VERSION)
    args = parser.parse_args(argv)
    try:
        built = build(Path(args.out), args.arch, python_version=args.python_version)
    except (InvalidRequest, InternalError) as exc:
        sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
        return 1
    for item in built:
        print(f"{item.path}  {item.size / 1e6:.2f} MB  sha256 {item.sha256}")
    return 0
