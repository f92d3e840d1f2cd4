"""The requirements, resources, inputs and outputs tables of the Terraform READMEs.

They are generated from the ``.tf`` files, never written by hand: the part of each README
between ``<!-- BEGIN_TF_DOCS -->`` and ``<!-- END_TF_DOCS -->`` (terraform-docs' markers)
must equal what :func:`render` makes of its directory. After changing a module, run

    .venv/bin/python -m tests.terraform.docs

to rewrite the tables (or ``make tf-docs``); tests/terraform/test_docs.py fails while a
README is stale. terraform-docs itself is a Go binary these machines do not have; this is
the same table layout from the parsed files.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
DOCUMENTED = [
    TERRAFORM / "modules" / "customer-key",
    TERRAFORM / "modules" / "platform",
    TERRAFORM / "examples" / "complete",
]
BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"


def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(
            f,
            serialization_options=SerializationOptions(
                strip_string_quotes=True, explicit_blocks=False
            ),
        )


def expression(value: Any) -> str:
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def cell(text: str) -> str:
    """One Markdown table cell: one line, pipes escaped, no raw HTML (<org> would vanish)."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def code(value: Any) -> str:
    if value is None:
        rendered = "null"
    elif isinstance(value, bool):
        rendered = "true" if value else "false"
    elif isinstance(value, str):
        rendered = json.dumps(value)
    else:
        rendered = json.dumps(value, separators=(", ", ": "))
    return f"`{rendered}`"


def blocks(directory: Path, kind: str) -> list[tuple[str, Any]]:
    found = []
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            found.extend((k, v) for k, v in block.items() if not k.startswith("__"))
    return found


def requirements(directory: Path) -> list[str]:
    terraform = parse(directory / "versions.tf")["terraform"][0]
    rows = [f"| terraform | {terraform['required_version']} |"]
    for providers in terraform["required_providers"]:
        for name, provider in sorted(providers.items()):
            if name.startswith("__"):  # python-hcl2 keeps comments under __comments__
                continue
            rows.append(f"| {name} | {provider['version']} |")
    return ["## Requirements", "", "| Name | Version |", "|------|---------|", *rows]


def modules(directory: Path) -> list[str]:
    rows = [f"| {name} | {body['source']} |" for name, body in sorted(blocks(directory, "module"))]
    if not rows:
        return []
    return ["## Modules", "", "| Name | Source |", "|------|--------|", *rows, ""]


def resources(directory: Path) -> list[str]:
    rows = []
    for kind, label in (("resource", "resource"), ("data", "data source")):
        for resource_type, named in blocks(directory, kind):
            rows.extend(f"| {resource_type}.{name} | {label} |" for name in named)
    if not rows:
        return []
    return ["## Resources", "", "| Name | Type |", "|------|------|", *sorted(rows), ""]


def inputs(directory: Path) -> list[str]:
    variables = blocks(directory, "variable")
    ordered = sorted(variables, key=lambda item: ("default" in item[1], item[0]))
    rows = []
    for name, body in ordered:
        required = "default" not in body
        default = "n/a" if required else code(body["default"])
        rows.append(
            f"| {name} | {cell(body['description'])} | `{expression(body['type'])}` "
            f"| {default} | {'yes' if required else 'no'} |"
        )
    return [
        "## Inputs",
        "",
        "| Name | Description | Type | Default | Required |",
        "|------|-------------|------|---------|:--------:|",
        *rows,
    ]


def outputs(directory: Path) -> list[str]:
    rows = [
        f"| {name} | {cell(body['description'])} |"
        for name, body in sorted(blocks(directory, "output"))
    ]
    return ["## Outputs", "", "| Name | Description |", "|------|-------------|", *rows]


def render(directory: Path) -> str:
    lines = [
        BEGIN,
        *requirements(directory),
        "",
        *modules(directory),
        *resources(directory),
        *inputs(directory),
        "",
        *outputs(directory),
        END,
    ]
    return "\n".join(lines)


def documented_part(readme: str) -> str:
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), readme, re.DOTALL)
    assert match, f"no {BEGIN} ... {END} section"
    return match.group(0)


def write(directory: Path) -> None:
    readme_path = directory / "README.md"
    readme = readme_path.read_text()
    readme_path.write_text(readme.replace(documented_part(readme), render(directory)))


if __name__ == "__main__":
    for documented in DOCUMENTED:
        write(documented)
        print(f"wrote {documented.relative_to(ROOT)}/README.md", file=sys.stderr)
