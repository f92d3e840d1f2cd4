"""The README tables between BEGIN_TF_DOCS and END_TF_DOCS are generated, not written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terraform.docs import DOCUMENTED, ROOT, TERRAFORM, documented_part, render


@pytest.mark.parametrize("directory", DOCUMENTED, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_readme_tables_are_generated_from_the_tf_files(directory: Path) -> None:
    readme = (directory / "README.md").read_text()
    assert documented_part(readme) == render(directory), (
        f"{directory.relative_to(ROOT)}/README.md is stale: "
        "run .venv/bin/python -m tests.terraform.docs (or make tf-docs)"
    )


def test_every_module_and_example_is_documented() -> None:
    found = {p.parent for p in TERRAFORM.glob("*/*/main.tf")}
    assert found == set(DOCUMENTED)
