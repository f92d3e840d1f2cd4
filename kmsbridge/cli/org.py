"""``kmsbridge org add``: record an org's KMS keys and cryptoperiod, make its first KEK."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "org", "orgs: their KMS keys and cryptoperiod")
    add = add_command(group, "add", "add an org with its first active KEK")
    add.add_argument("org", help="org id: 1-64 of A-Z a-z 0-9 . _ -")
    add.add_argument(
        "--kms-key",
        dest="kms_keys",
        action="append",
        required=True,
        metavar="ARN",
        help="the customer's KMS key ARN; repeat for replicas or other regions",
    )
    add.add_argument(
        "--cryptoperiod-days",
        type=int,
        default=90,
        help="days a KEK encrypts new recordings before rotation (1-730, default 90)",
    )
    add.add_argument("--bits", type=int, choices=(3072, 4096), default=3072, help="KEK size")
    add.set_defaults(handler=add_org)


def add_org(ctx: Context) -> int:
    from kmsbridge.formats import validate_org
    from kmsbridge.keys.kms import validate_key_arns
    from kmsbridge.lifecycle.rotation import create_org

    a = ctx.args
    validate_org(a.org)  # bad input is refused before the platform CA is even looked up
    validate_key_arns(a.kms_keys)
    org, kek = create_org(
        ctx.store,
        ctx.kms,
        a.org,
        a.kms_keys,
        cryptoperiod_days=a.cryptoperiod_days,
        bits=a.bits,
        certifier=ctx.services.certifier,
    )
    ctx.emit(
        {
            "org": org.org,
            "kms_keys": list(org.kms_keys),
            "cryptoperiod_days": org.cryptoperiod_days,
            "active_kek": kek.kek_id,
        },
        f"org {org.org}: active KEK {kek.kek_id} under {len(org.kms_keys)} KMS key(s)",
    )
    return 0
