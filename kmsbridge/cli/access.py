"""``kmsbridge access``: which KEK periods play now, and revoking or restoring a period.

``check ORG`` unwraps every KEK of the org through KMS now (no cache) and reads each KMS
key's state. ``revoke-window`` and ``restore-window`` change nothing themselves: they print
the key-policy statement (and the customer-key module's ``revoked_kek_ids``) for the
customer to apply, since the key policy is theirs.
"""

from __future__ import annotations

import json
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group

_DATE_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "access", "which recordings play, and revocation by period")
    check = add_command(
        group, "check", "per KEK, whether it unwraps now; each KMS key's state (no cache)"
    )
    check.add_argument("org")
    check.set_defaults(handler=access_check)
    for name, verb, handler in (
        ("revoke-window", "stop", revoke_window),
        ("restore-window", "resume", restore_window),
    ):
        parser = add_command(
            group,
            name,
            f"print the key-policy change that would {verb} playback of a stretch of time",
        )
        parser.add_argument("org")
        parser.add_argument("--from", dest="start", required=True, help=f"first day, {_DATE_HELP}")
        parser.add_argument(
            "--to", dest="end", required=True, help=f"last day (included), {_DATE_HELP}"
        )
        parser.add_argument(
            "--revoked-kek-ids",
            nargs="*",
            default=[],
            metavar="KEK_ID",
            help="KEK ids the key policy already denies (the current revoked_kek_ids)",
        )
        parser.set_defaults(handler=handler)


def access_check(ctx: Context) -> int:
    """The report on stdout; unless every live KEK unwraps, also an error and its status."""
    from kmsbridge.decryptor.access import ERROR_CODE_OF_STATE, AccessState, access_state
    from kmsbridge.errors import error_from_code
    from kmsbridge.lifecycle.windows import kek_periods

    org = ctx.args.org
    org_record = ctx.store.get_org(org)
    keks = ctx.store.list_keks(org)
    checks = {c.kek_id: c for c in ctx.decryptor.check_access(org)}
    rows = []
    for period in reversed(kek_periods(keks)):  # newest first, as `kek list`
        check = checks[period.kek_id]
        rows.append(period.to_dict() | {"outcome": check.outcome, "message": check.message})
    arns = list(dict.fromkeys([*org_record.kms_keys, *(a for k in keks for a in k.kms_keys)]))
    state = access_state([r["outcome"] for r in rows])
    data = {"org": org, "state": str(state), "keks": rows, "kms_keys": _key_states(ctx, arns)}
    ctx.emit(data, _check_text(data))
    failed = [r for r in rows if r["outcome"] not in ("ok", "destroyed")]
    _record(ctx, org, str(state), failed[0] if failed else None)
    if state is AccessState.OK:
        return 0
    live = sum(r["outcome"] != "destroyed" for r in rows)
    raise error_from_code(
        ERROR_CODE_OF_STATE[state],
        f"access of org {org!r} is {state}: {live - len(failed)} of {live} live KEK(s) unwrap now",
    )


def _key_states(ctx: Context, arns: list[str]) -> list[dict[str, str | None]]:
    from kmsbridge.errors import KmsBridgeError

    states: list[dict[str, str | None]] = []
    for arn in arns:
        try:
            states.append({"arn": arn, "state": ctx.kms.key_state(arn)})
        except KmsBridgeError as exc:
            states.append({"arn": arn, "state": None, "error": exc.code})
    return states


def _record(ctx: Context, org: str, state: str, failed: dict[str, Any] | None) -> None:
    """Keep the result for `org show`; a table this identity may not write is no failure."""
    import logging

    from kmsbridge.clock import iso, utcnow
    from kmsbridge.decryptor.access import AccessState, access_record
    from kmsbridge.errors import KmsBridgeError

    first = None if failed is None else (failed["kek"], failed["outcome"], failed["message"])
    check = access_record(AccessState(state), iso(utcnow()), first)
    try:
        ctx.store.record_access_check(org, check)
    except KmsBridgeError as exc:
        logging.getLogger(__name__).debug("access check not recorded: %s", exc.code)


def _check_text(data: dict[str, Any]) -> str:
    lines = [f"org {data['org']}: {data['state']}"]
    for row in data["keks"]:
        until = row["to"] or "now"
        outcome = row["outcome"] + (f": {row['message']}" if row["message"] else "")
        lines.append(f"  KEK {row['kek']}  {row['state']:<9} {row['from']} .. {until}  {outcome}")
    for key in data["kms_keys"]:
        lines.append(f"  KMS key {key['arn']}: {key['state'] or key['error']}")
    return "\n".join(lines)


def revoke_window(ctx: Context) -> int:
    from kmsbridge.lifecycle.windows import revoke_report

    report = revoke_report(_plan(ctx))
    ctx.emit(report, _window_text(report, "revoke playback of"))
    return 0


def restore_window(ctx: Context) -> int:
    from kmsbridge.lifecycle.windows import restore_report

    report = restore_report(_plan(ctx))
    ctx.emit(report, _window_text(report, "restore playback of"))
    return 0


def _plan(ctx: Context) -> Any:
    from kmsbridge.clock import utcnow
    from kmsbridge.lifecycle.windows import plan_window

    args = ctx.args
    return plan_window(
        ctx.store,
        args.org,
        args.start,
        args.end,
        already_revoked=args.revoked_kek_ids,
        now=utcnow(),
    )


def _window_text(report: dict[str, Any], verb: str) -> str:
    covered = ", ".join(
        f"{c['from']} to {c['to'] or 'the next rotation'}" for c in report["covered"]
    )
    lines = [
        f"org {report['org']}: {verb} {len(report['kek_ids'])} KEK period(s)",
        f"asked:   {report['asked']['from']} to {report['asked']['to']}",
        f"covered: {covered}",
    ]
    for kek in report["keks"]:
        lines.append(f"  KEK {kek['kek']}  {kek['state']:<9} {kek['from']} .. {kek['to'] or 'now'}")
    lines += [f"note: {n}" for n in report["notes"]]
    if report["action"] == "restore":
        lines += ["", "Remove this statement from the key policy:"]
        lines.append(json.dumps(report["statement_to_remove"], indent=2))
        if report["statement"] is not None:
            lines += ["and keep this one for the periods still revoked:"]
            lines.append(json.dumps(report["statement"], indent=2))
    else:
        lines += ["", "Add this statement to the key policy:"]
        lines.append(json.dumps(report["statement"], indent=2))
    lines += ["of each KMS key:"] + [f"  {arn}" for arn in report["kms_keys"]]
    lines += ["", "or, with the customer-key Terraform module:", report["terraform"]]
    return "\n".join(lines)
