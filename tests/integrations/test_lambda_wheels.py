"""The zips for the Lambda runtime carry wheels built for it (issue 17, item 1).

``kmsbridge lambda build`` installs manylinux wheels for the target Python and
architecture; a compiled wheel for another Python (cffi's ``_cffi_backend``) would not
import on the function. Every wheel's ``WHEEL`` tags in each zip must be pure, or CPython
of the target version (abi3 wheels: built for that version or an older one), for the
target platform. tests/integrations/test_lambda_build.py runs a zip built for this
machine's Python.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from kmsbridge.errors import InvalidRequest
from kmsbridge.integrations.aws_lambda.build import PYTHON_VERSION, build

MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def wheel_tags(zip_path: Path) -> dict[str, list[str]]:
    """Each installed distribution's tags, from its ``*.dist-info/WHEEL``."""
    with zipfile.ZipFile(zip_path) as archive:
        return {
            name.split("/")[0]: re.findall(r"^Tag: (\S+)$", archive.read(name).decode(), re.M)
            for name in archive.namelist()
            if re.fullmatch(r"[^/]+\.dist-info/WHEEL", name)
        }


def fits(tag: str, python: str, machine: str) -> bool:
    interpreter, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none"
    if not re.fullmatch(rf"manylinux[0-9_]*_{machine}", platform):
        return False
    version = int(python.replace(".", ""))
    built_for = [int(v) for v in re.findall(r"cp(\d+)", interpreter)]
    if abi == "abi3":
        return any(v <= version for v in built_for)
    return abi == f"cp{version}" and version in built_for


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_compiled_wheels_match_the_runtime_and_architecture(arch: str, tmp_path: Path) -> None:
    assert PYTHON_VERSION == "3.13"
    built = build(tmp_path, arch)
    decryptor = next(b for b in built if b.name == "decryptor")
    tags = wheel_tags(decryptor.path)
    compiled = {d: t for d, t in tags.items() if not all(x.endswith("-none-any") for x in t)}
    assert any(d.startswith("cryptography-") for d in compiled), sorted(tags)
    assert any(d.startswith("cffi-") for d in compiled), sorted(tags)
    for dist, dist_tags in tags.items():
        assert any(fits(t, PYTHON_VERSION, MACHINES[arch]) for t in dist_tags), (dist, dist_tags)
    with zipfile.ZipFile(decryptor.path) as archive:
        extensions = [n for n in archive.namelist() if n.endswith(".so")]
    assert extensions and all(
        "cpython-313" in n or ".abi3." in n for n in extensions if "_cffi_backend" in n
    ), extensions


def test_the_tag_check_refuses_another_python_or_machine() -> None:
    assert fits("cp313-cp313-manylinux_2_17_x86_64", "3.13", "x86_64")
    assert not fits("cp311-cp311-manylinux_2_17_x86_64", "3.13", "x86_64")
    assert fits("cp311-abi3-manylinux_2_28_aarch64", "3.13", "aarch64")
    assert not fits("cp311-abi3-manylinux_2_28_x86_64", "3.13", "aarch64")
    assert fits("py3-none-any", "3.13", "x86_64")


def test_an_unknown_python_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="--python-version"):
        build(tmp_path, "x86_64", python_version="2.7")
