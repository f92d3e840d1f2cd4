"""``kmsbridge keys public``: the active KEK's certificate and chain for offline encryptors."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "keys", "public keys for encryptors")
    public = add_command(
        group,
        "public",
        "write the org's active KEK certificate and its chain (PEM bundle)",
        examples="  kmsbridge keys public acme -o acme-bundle.pem\n"
        "  kmsbridge keys public acme -o acme-bundle.pem --force   # after a rotation",
    )
    public.add_argument("org")
    public.add_argument(
        "-o", "--out", required=True, help="bundle file to write (PEM: certificate, then chain)"
    )
    public.add_argument("--force", action="store_true", help="replace an existing file")
    public.set_defaults(handler=public_bundle)


def public_bundle(ctx: Context) -> int:
    from kmsbridge.keys.bundle import write_bundle
    from kmsbridge.lifecycle.publishing import bundle_for

    bundle = bundle_for(ctx.store, ctx.args.org)
    write_bundle(bundle.pem, ctx.args.out, replace=ctx.args.force)
    ctx.emit(
        {
            "org": bundle.org,
            "kek": bundle.kek_id,
            "not_after": bundle.not_after,
            "ca_fingerprint": bundle.anchor,
            "file": ctx.args.out,
        },
        f"wrote {ctx.args.out}: KEK {bundle.kek_id} certified until {bundle.not_after} "
        f"by the CA with SHA-256 fingerprint {bundle.anchor}",
    )
    return 0
