"""``kmsbridge keys public``: the active public key as a bundle for offline encryptors."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "keys", "public keys for encryptors")
    public = add_command(
        group,
        "public",
        "write the org's active public key as a bundle",
        examples="  kmsbridge keys public acme -o acme-bundle.json\n"
        "  kmsbridge keys public acme -o acme-bundle.json --force   # after a rotation",
    )
    public.add_argument("org")
    public.add_argument("-o", "--out", required=True, help="bundle file to write (JSON)")
    public.add_argument("--force", action="store_true", help="replace an existing file")
    public.set_defaults(handler=public_bundle)


def public_bundle(ctx: Context) -> int:
    from kmsbridge.keys.bundle import write_bundle
    from kmsbridge.lifecycle.publishing import bundle_for

    bundle = bundle_for(ctx.store, ctx.args.org)
    write_bundle(bundle, ctx.args.out, replace=ctx.args.force)
    ctx.emit(
        {k: bundle[k] for k in ("org", "kek", "not_after")} | {"file": ctx.args.out},
        f"wrote {ctx.args.out}: KEK {bundle['kek']} valid until {bundle['not_after']}",
    )
    return 0
