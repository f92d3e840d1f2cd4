"""``kmsbridge kek``: inventory, rotate, rewrap, retire, destroy, export and import KEKs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from kmsbridge.cli.base import Context, add_command, add_group

if TYPE_CHECKING:
    from kmsbridge.lifecycle.rewrap import RewrapStep


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "kek", "an org's KEKs: inventory, rotation, rewrap, backup")

    ls = add_command(
        group,
        "list",
        "every KEK of an org (newest first), its state, ages and KMS keys",
        examples="  kmsbridge kek list acme\n  kmsbridge --output json kek list acme",
    )
    ls.add_argument("org")
    ls.set_defaults(handler=list_keks)

    rotate = add_command(
        group,
        "rotate",
        "make a new active KEK now; the previous one retires",
        examples="  kmsbridge kek rotate acme --dry-run\n  kmsbridge kek rotate acme",
    )
    rotate.add_argument("org")
    _dry_run(rotate)
    rotate.set_defaults(handler=rotate_kek)

    activate = add_command(
        group,
        "activate",
        "make a KEK that was never active (an imported key pair) the active one",
        examples="  kmsbridge kek activate acme 3f2a9c01   # a unique prefix of the KEK id",
    )
    activate.add_argument("org")
    activate.add_argument("kek", help=_KEK_HELP)
    activate.set_defaults(handler=activate_kek)

    _register_rewrap(group)

    retire = add_command(group, "retire", "make a KEK decrypt-only")
    retire.add_argument("org")
    retire.add_argument("kek", help=_KEK_HELP)
    retire.set_defaults(handler=retire_kek)

    destroy = add_command(
        group,
        "destroy",
        "crypto-shred a retired KEK: its recordings can never be played again",
        examples="  kmsbridge kek destroy acme 3f2a9c01 --dry-run\n"
        "  kmsbridge kek destroy acme 3f2a9c01 --confirm FULL-64-HEX-KEK-ID",
    )
    destroy.add_argument("org")
    destroy.add_argument("kek", help=_KEK_HELP)
    destroy.add_argument(
        "--confirm",
        metavar="KEK",
        help="the full KEK id typed back; without it a terminal asks for it",
    )
    _dry_run(destroy)
    destroy.set_defaults(handler=destroy_kek)

    export = add_command(
        group,
        "export",
        "back up an org's KEK items, still wrapped",
        examples="  kmsbridge kek export acme -o acme-keks.json",
    )
    export.add_argument("org")
    export.add_argument("-o", "--out", required=True, help="backup file to write (JSON)")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    export.set_defaults(handler=export_keks)

    imp = add_command(
        group,
        "import",
        "restore missing KEK items from a backup, each proven through KMS first",
        examples="  kmsbridge kek import acme-keks.json --dry-run\n"
        "  kmsbridge kek import acme-keks.json --missing-only",
    )
    imp.add_argument("file", help="backup file from 'kek export'")
    imp.add_argument(
        "--missing-only",
        action="store_true",
        help="write only the missing items and keep those that differ (after a rotation "
        "or a destroy) instead of refusing",
    )
    _dry_run(imp)
    imp.add_argument(
        "--kms-key",
        dest="kms_keys",
        action="append",
        default=[],
        metavar="ARN",
        help="the org's KMS keys, required when the key table does not hold the org",
    )
    imp.set_defaults(handler=import_keks)


_KEK_HELP = "KEK id (64 hex characters) or a unique prefix of at least 8"


def _dry_run(parser: Any) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="check and say what would change; change nothing"
    )


def _register_rewrap(group: Any) -> None:
    rewrap = add_command(
        group,
        "rewrap",
        "move an org's KEKs to new KMS keys (resumable: run again after any failure)",
        description=(
            "With --kms-key: register those ARNs as the org's KMS keys (audited, as "
            "'org set-kms-keys') and rewrap every KEK under them. Without: finish moving the "
            "KEKs to the keys already registered."
        ),
    )
    rewrap.add_argument("org", nargs="?", help="the org (or --all-orgs)")
    rewrap.add_argument(
        "--kms-key",
        dest="kms_keys",
        action="append",
        default=[],
        metavar="ARN",
        help="the full new set of KMS key ARNs; repeat for replicas or regions",
    )
    rewrap.add_argument(
        "--all-orgs",
        action="store_true",
        help="every org that uses a --from-kms-key key, instead of one ORG",
    )
    rewrap.add_argument(
        "--from-kms-key",
        dest="from_keys",
        action="append",
        default=[],
        metavar="ARN",
        help="with --all-orgs: select the orgs whose KMS keys include this ARN (repeatable)",
    )
    rewrap.add_argument(
        "--queue-url",
        help="with --all-orgs: register the keys here, then send one SQS job per org "
        "(the message names no key) to the jobs Lambda",
    )
    _dry_run(rewrap)
    rewrap.set_defaults(handler=rewrap_keks)


# ---------------------------------------------------------------- handlers


def list_keks(ctx: Context) -> int:
    from kmsbridge.lifecycle.inventory import inventory

    report = inventory(ctx.store, ctx.kms, ctx.args.org)
    lines = [
        f"org {report.org}: cryptoperiod {report.cryptoperiod_days} days, "
        f"active KEK {report.active_kek}"
    ]
    for k in report.keks:
        left = f", {k.days_left} days left" if k.days_left is not None else ""
        lines.append(
            f"  {k.kek_id}  {k.state:<9} {k.source:<9} age {k.age_days} days{left}"
            f"{'' if k.kms_key_usable or k.state == 'destroyed' else '  (no usable KMS key)'}"
        )
        lines += [f"      under {arn}" for arn in k.kms_keys]
    for s in report.key_status:
        lines.append(f"  KMS {s.arn}  {s.state}{'' if s.usable else '  NOT USABLE'}")
    ctx.emit(report.to_dict(), "\n".join(lines))
    return 0


def rotate_kek(ctx: Context) -> int:
    from kmsbridge.lifecycle.rotation import rotate

    if ctx.args.dry_run:
        org, active = ctx.store.active_kek(ctx.args.org)
        ctx.emit(
            {"dry_run": True, "org": org.org, "retired_kek": active.kek_id,
             "kms_keys": list(org.kms_keys)},
            f"dry run: org {org.org} would get a new active KEK under {len(org.kms_keys)} KMS "
            f"key(s) and KEK {active.kek_id} would retire; nothing was changed",
        )  # fmt: skip
        return 0
    done = rotate(ctx.store, ctx.kms, ctx.args.org, certifier=ctx.services.certifier)
    ctx.emit(
        vars(done), f"org {done.org}: active KEK {done.active_kek}, retired {done.retired_kek}"
    )
    return 0


def activate_kek(ctx: Context) -> int:
    from kmsbridge.lifecycle.rotation import activate

    done = activate(ctx.store, ctx.args.org, ctx.kek_id(ctx.args.org, ctx.args.kek))
    ctx.emit(
        vars(done), f"org {done.org}: active KEK {done.active_kek}, retired {done.retired_kek}"
    )
    return 0


def rewrap_keks(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest

    a = ctx.args
    if a.all_orgs:
        return _rewrap_all(ctx)
    if not a.org or a.from_keys or a.queue_url:
        raise InvalidRequest("give one ORG, or --all-orgs with --from-kms-key [--queue-url]")
    if a.dry_run:
        return _rewrap_plan(ctx)
    result = rewrap_one(ctx, a.org, a.kms_keys)
    counts = {o: result.count(o) for o in ("rewrapped", "already", "destroyed")}
    ctx.emit(
        {"org": result.org, "kms_keys": list(result.kms_keys), **counts},
        f"org {result.org}: {counts['rewrapped']} KEK(s) rewrapped, {counts['already']} "
        f"already done, {counts['destroyed']} destroyed; the org now uses "
        f"{len(result.kms_keys)} KMS key(s)",
    )
    return 0


def _rewrap_plan(ctx: Context) -> int:
    """What a rewrap would do to each KEK, from the table alone (no KMS call)."""
    from kmsbridge.keys.kms import validate_key_arns
    from kmsbridge.lifecycle.rewrap import same_keys

    # Without --kms-key: the keys the org already registers (finishing a rewrap).
    target = validate_key_arns(ctx.args.kms_keys or list(ctx.store.get_org(ctx.args.org).kms_keys))
    keks = [
        {"kek": k.kek_id, "state": k.state, "would": "destroyed" if k.state == "destroyed"
         else "already" if same_keys(k.kms_keys, target) else "rewrap"}
        for k in ctx.store.list_keks(ctx.args.org)
    ]  # fmt: skip
    todo = sum(k["would"] == "rewrap" for k in keks)
    ctx.emit(
        {"dry_run": True, "org": ctx.args.org, "kms_keys": target, "keks": keks},
        f"dry run: org {ctx.args.org}: {todo} of {len(keks)} KEK(s) would be rewrapped under "
        f"{len(target)} KMS key(s); nothing was changed",
    )
    return 0


def rewrap_one(ctx: Context, org: str, kms_keys: list[str]) -> Any:
    """Register ``kms_keys`` (when given) as the operator, then rewrap the org's KEKs."""
    from kmsbridge.lifecycle.rewrap import change_org_kms_keys, rewrap_org

    if kms_keys:
        result = change_org_kms_keys(
            ctx.store, ctx.kms, org, kms_keys, set_by=operator(ctx), progress=_progress()
        )
    else:
        result = rewrap_org(ctx.store, ctx.kms, org, progress=_progress())
    _end_progress()
    return result


def _rewrap_all(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.integrations.aws_lambda.jobs import enqueue, rewrap_message
    from kmsbridge.lifecycle.rewrap import set_org_kms_keys

    a = ctx.args
    if a.org or not a.from_keys or not a.kms_keys:
        raise InvalidRequest(
            "--all-orgs takes no ORG and needs --from-kms-key ARN to select the orgs and "
            "--kms-key ARN for their new keys (never move every customer's orgs to one key)"
        )
    orgs = [o.org for o in ctx.store.list_orgs() if set(o.kms_keys) & set(a.from_keys)]
    if a.dry_run:
        ctx.emit(
            {"dry_run": True, "orgs": orgs, "kms_keys": a.kms_keys},
            f"dry run: {len(orgs)} org(s) would be rewrapped: {', '.join(orgs) or 'none'}; "
            "nothing was changed",
        )
        return 0
    if a.queue_url:
        who = operator(ctx)
        for org in orgs:  # the operator registers; the queued jobs only carry it out
            set_org_kms_keys(ctx.store, org, a.kms_keys, set_by=who)
        sent = enqueue(ctx.clients.client("sqs"), a.queue_url, map(rewrap_message, orgs))
        ctx.emit({"orgs": orgs, "queued": sent}, f"queued {sent} rewrap job(s)")
        return 0
    for n, org in enumerate(orgs, 1):
        _status(f"[{n}/{len(orgs)}] org {org}")
        rewrap_one(ctx, org, a.kms_keys)
    _end_progress()
    ctx.emit({"orgs": orgs, "rewrapped_orgs": len(orgs)}, f"rewrapped {len(orgs)} org(s)")
    return 0


def retire_kek(ctx: Context) -> int:
    from kmsbridge.lifecycle.rotation import retire

    record = retire(ctx.store, ctx.args.org, ctx.kek_id(ctx.args.org, ctx.args.kek))
    ctx.emit(
        {
            "org": record.org,
            "kek": record.kek_id,
            "state": record.state,
            "retired_at": record.retired_at,
        },
        f"KEK {record.kek_id} is retired (decrypt only) since {record.retired_at}",
    )
    return 0


def destroy_kek(ctx: Context) -> int:
    from kmsbridge.lifecycle.rotation import check_destroyable, destroy

    a = ctx.args
    kek = ctx.kek_id(a.org, a.kek)
    if a.dry_run:
        record = check_destroyable(ctx.store, a.org, kek)
        ctx.emit(
            {"dry_run": True, "org": a.org, "kek": kek, "state": record.state},
            f"dry run: KEK {kek} ({record.state}) would be destroyed and its recordings "
            "could never be played again; nothing was changed",
        )
        return 0
    # The confirmation is the whole id typed back, never a prefix: it is the safety rail.
    confirm = a.confirm if a.confirm is not None else _ask_confirmation(kek)
    record = destroy(ctx.store, a.org, kek, confirm=confirm, destroyed_by=operator(ctx))
    ctx.emit(
        {
            "org": record.org,
            "kek": record.kek_id,
            "state": record.state,
            "destroyed_at": record.destroyed_at,
            "destroyed_by": record.destroyed_by,
        },
        f"KEK {record.kek_id} destroyed on {record.destroyed_at} by {record.destroyed_by}; "
        "its recordings can no longer be played",
    )
    return 0


def export_keks(ctx: Context) -> int:
    from kmsbridge.lifecycle.backup import export_org, write_backup

    backup = export_org(ctx.store, ctx.args.org)
    write_backup(backup, ctx.args.out, replace=ctx.args.force)
    n = len(backup["items"]) - 1
    ctx.emit(
        {"org": backup["org"], "keks": n, "file": ctx.args.out, "checksum": backup["checksum"]},
        f"wrote {ctx.args.out}: {n} KEK item(s) of org {backup['org']}, still wrapped",
    )
    return 0


def import_keks(ctx: Context) -> int:
    from kmsbridge.lifecycle.backup import import_backup, read_backup

    a = ctx.args
    result = import_backup(
        ctx.store,
        ctx.kms,
        read_backup(a.file),
        kms_key_arns=a.kms_keys or None,
        missing_only=a.missing_only,
        dry_run=a.dry_run,
    )
    data: dict[str, Any] = {
        "org": result.org,
        "created": list(result.created),
        "identical": list(result.identical),
        "kept": list(result.kept),
    }
    verb = "would be restored" if result.dry_run else "restored"
    text = (
        f"org {result.org}: {len(result.created)} item(s) {verb}, "
        f"{len(result.identical)} already present and identical"
        + (f", {len(result.kept)} present and different, kept" if result.kept else "")
    )
    if result.dry_run:
        data["dry_run"] = True
        text = f"dry run: {text}; nothing was changed"
    ctx.emit(data, text)
    return 0


# ---------------------------------------------------------------- helpers


def operator(ctx: Context) -> str:
    """Who is acting: the AWS caller's ARN when STS answers, else the local OS user."""
    import getpass

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(ctx.clients.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        return f"os-user:{getpass.getuser()}"


def _ask_confirmation(kek_id: str) -> str | None:
    """On a terminal, ask for the KEK id to be typed back; elsewhere there is no answer."""
    if not sys.stdin.isatty():
        return None
    sys.stderr.write(
        f"Destroying KEK {kek_id} makes every recording under it unreadable, forever.\n"
        "Type the KEK id to confirm: "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _progress() -> Any:
    """A progress line on stderr when it is a terminal; nothing in pipes and logs."""
    if not sys.stderr.isatty():
        return None

    def show(step: RewrapStep) -> None:
        _status(f"[{step.index}/{step.total}] KEK {step.kek_id[:12]}… {step.outcome}")

    return show


def _status(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
