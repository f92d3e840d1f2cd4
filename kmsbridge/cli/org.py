"""``kmsbridge org``: add an org (its KMS keys, cryptoperiod and first KEK), list, show,
set, and change its registered KMS keys (``set-kms-keys``: audited, then every KEK is
rewrapped)."""

from __future__ import annotations

from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "org", "orgs: their KMS keys and cryptoperiod")
    add = add_command(
        group,
        "add",
        "add an org with its first active KEK",
        examples="  kmsbridge org add acme \\\n"
        "      --kms-key arn:aws:kms:eu-west-1:111122223333:key/1234abcd-...",
    )
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

    ls = add_command(group, "list", "every org in the key table", examples="  kmsbridge org list")
    ls.set_defaults(handler=list_orgs)

    show = add_command(
        group,
        "show",
        "an org's KMS keys, cryptoperiod, active KEK and last access check",
        examples="  kmsbridge org show acme",
    )
    show.add_argument("org")
    show.set_defaults(handler=show_org)

    change = add_command(
        group,
        "set",
        "change an org's settings (the cryptoperiod of its KEKs)",
        examples="  kmsbridge org set acme --cryptoperiod-days 30",
    )
    change.add_argument("org")
    change.add_argument(
        "--cryptoperiod-days",
        type=int,
        required=True,
        help="days a KEK encrypts before rotation (1-730); applies to the active KEK too",
    )
    change.set_defaults(handler=set_org)

    keys = add_command(
        group,
        "set-kms-keys",
        "register new KMS keys for an org (audited) and rewrap its KEKs under them",
        description=(
            "The only way an org's KMS keys change after 'org add'. Records the ARNs, who "
            "set them and when; the replaced keys still unwrap until every KEK is rewrapped "
            "(resumable: run again after any failure)."
        ),
    )
    keys.add_argument("org")
    keys.add_argument(
        "--kms-key",
        dest="kms_keys",
        action="append",
        required=True,
        metavar="ARN",
        help="the full new set of KMS key ARNs; repeat for replicas or other regions",
    )
    keys.set_defaults(handler=set_kms_keys)


def add_org(ctx: Context) -> int:
    from kmsbridge.cli.kek import operator
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
        added_by=operator(ctx),
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


def org_dict(org: Any) -> dict[str, Any]:
    return {
        "org": org.org,
        "kms_keys": list(org.kms_keys),
        "cryptoperiod_days": org.cryptoperiod_days,
        "active_kek": org.active_kek,
        "created_at": org.created_at,
        "previous_kms_keys": list(org.previous_kms_keys),
        "kms_keys_set_by": org.kms_keys_set_by,
        "kms_keys_set_at": org.kms_keys_set_at,
    }


def list_orgs(ctx: Context) -> int:
    orgs = ctx.store.list_orgs()
    lines = [
        f"{o.org:<24} active KEK {o.active_kek}  {len(o.kms_keys)} KMS key(s), "
        f"{o.cryptoperiod_days} days"
        for o in orgs
    ]
    ctx.emit({"orgs": [org_dict(o) for o in orgs]}, "\n".join(lines) or "no orgs")
    return 0


def show_org(ctx: Context) -> int:
    from kmsbridge.clock import iso
    from kmsbridge.keys.policy import not_after

    org, active = ctx.store.active_kek(ctx.args.org)
    checks = ctx.store.access_checks(org.org)
    data = org_dict(org) | {
        "active_kek_not_after": iso(not_after(org, active)),
        "last_access_check": checks.get("last_access_check"),
        "last_access_error": checks.get("last_access_error"),
    }
    lines = [
        f"org {org.org}",
        f"  active KEK        {org.active_kek} (until {data['active_kek_not_after']})",
        f"  cryptoperiod      {org.cryptoperiod_days} days",
        *(f"  KMS key           {arn}" for arn in org.kms_keys),
        f"  last access check {_check_text(data['last_access_check'])}",
        f"  last access error {_check_text(data['last_access_error'])}",
    ]
    ctx.emit(data, "\n".join(lines))
    return 0


def _check_text(check: dict[str, str] | None) -> str:
    if not check:
        return "none recorded (kmsbridge access check ORG records one)"
    text = f"{check['at']} {check['state']}"
    if "code" in check:
        text += f": KEK {check['kek']}: {check['code']}: {check['message']}"
    return text


def set_org(ctx: Context) -> int:
    from kmsbridge.keys.policy import validate_cryptoperiod

    days = validate_cryptoperiod(ctx.args.cryptoperiod_days)
    org = ctx.store.get_org(ctx.args.org)
    updated = ctx.store.update_cryptoperiod(org, days)
    ctx.emit(
        org_dict(updated) | {"previous_cryptoperiod_days": org.cryptoperiod_days},
        f"org {updated.org}: cryptoperiod {org.cryptoperiod_days} -> {days} days",
    )
    return 0


def set_kms_keys(ctx: Context) -> int:
    from kmsbridge.cli.kek import rewrap_one

    result = rewrap_one(ctx, ctx.args.org, ctx.args.kms_keys)
    org = ctx.store.get_org(result.org)
    ctx.emit(
        {
            "org": org.org,
            "kms_keys": list(org.kms_keys),
            "kms_keys_set_by": org.kms_keys_set_by,
            "kms_keys_set_at": org.kms_keys_set_at,
            "rewrapped": result.count("rewrapped"),
        },
        f"org {org.org}: KMS keys set by {org.kms_keys_set_by} at {org.kms_keys_set_at}; "
        f"{result.count('rewrapped')} KEK(s) rewrapped under {len(org.kms_keys)} KMS key(s)",
    )
    return 0
