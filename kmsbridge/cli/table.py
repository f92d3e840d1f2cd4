"""``kmsbridge table create``: the key table for development and demos."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "table", "the key table (development and demos)")
    create = add_command(
        group,
        "create",
        "create the key table (production tables come from Terraform)",
    )
    create.set_defaults(handler=create_table)


def create_table(ctx: Context) -> int:
    ctx.store.create_table()
    ctx.emit({"table": ctx.table, "created": True}, f"created key table {ctx.table}")
    return 0
