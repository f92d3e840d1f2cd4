"""The key table on DynamoDB: one item per KEK, one settings item per org. No crypto here.

Partition key ``org``, sort key ``kek`` (the KEK id; the org's settings item uses the sort
key ``#org``, which no hex KEK id can equal). A KEK item is never overwritten: every put is
conditional. The org item names the one active KEK, and every change of it is a
transaction conditional on the org's ``version``, so there is never more than one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import client_error_code, error_for
from kmsbridge.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidRequest,
    KmsBridgeError,
    NotFound,
)
from kmsbridge.keys.records import (
    STATES,
    ExportRecipient,
    KekRecord,
    KekState,
    LkmCredentialRecord,
    OrgRecord,
)

DEFAULT_TABLE = "kmsbridge-keks"
ORG_SORT_KEY = "#org"
LAST_ACCESS_CHECK = "last_access_check"
LAST_ACCESS_ERROR = "last_access_error"
# The Hawk credentials of the Genesys Cloud LKM endpoint share one partition (no org id
# contains '#'), so an id is unique across orgs and found without knowing its org.
LKM_CREDENTIALS = "#lkm-credential"


class KeyStore:
    """DynamoDB access for the key table, through a boto3 DynamoDB client passed in."""

    def __init__(self, client: Any, table_name: str = DEFAULT_TABLE) -> None:
        self.client = client
        self.table = table_name

    # ------------------------------------------------------------ dev setup

    def create_table(self) -> None:
        """Create the table (development and demos; production tables come from Terraform)."""
        with _aws_errors(self.table):
            self.client.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "org", "AttributeType": "S"},
                    {"AttributeName": "kek", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "org", "KeyType": "HASH"},
                    {"AttributeName": "kek", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            self.client.get_waiter("table_exists").wait(TableName=self.table)

    # ------------------------------------------------------------ reads

    def get_org(self, org: str) -> OrgRecord:
        item = self._get(org, ORG_SORT_KEY)
        if item is None:
            raise NotFound(f"org {org!r} is not in the key table")
        return org_from_item(item)

    def get_kek(self, org: str, kek_id: str) -> KekRecord:
        item = self._get(org, kek_id)
        if item is None:
            raise NotFound(f"KEK {kek_id} of org {org!r} is not in the key table")
        return kek_from_item(item)

    def list_keks(self, org: str) -> list[KekRecord]:
        return [kek_from_item(i) for i in self._query(org) if i["kek"]["S"] != ORG_SORT_KEY]

    def list_orgs(self) -> list[OrgRecord]:
        """Every org settings item (a scan: for scheduled jobs, not for hot paths)."""
        out: list[OrgRecord] = []
        with _aws_errors(self.table):
            for page in self.client.get_paginator("scan").paginate(
                TableName=self.table,
                FilterExpression="kek = :o",
                ExpressionAttributeValues={":o": {"S": ORG_SORT_KEY}},
                ConsistentRead=True,
            ):
                out.extend(org_from_item(i) for i in page["Items"])
        return sorted(out, key=lambda o: o.org)

    def active_kek(self, org: str) -> tuple[OrgRecord, KekRecord]:
        org_record = self.get_org(org)
        return org_record, self.get_kek(org, org_record.active_kek)

    def get_kek_with_org(self, org: str, kek_id: str) -> tuple[OrgRecord, KekRecord]:
        """A KEK item and its org's settings item (the decryptor needs the org's registered
        KMS keys to unwrap a KEK). Two GetItems: TransactGetItems would need its own IAM
        action under moto's enforcement, BatchGetItem another."""
        return self.get_org(org), self.get_kek(org, kek_id)

    # ------------------------------------------------------------ writes

    def create_org(self, org: OrgRecord, first_kek: KekRecord) -> None:
        """The org's settings and its first active KEK, together or not at all."""
        with _aws_errors(self.table, conflict=f"org {org.org!r} already exists"):
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": self._put_new(org_to_item(org))},
                    {"Put": self._put_new(kek_to_item(first_kek))},
                ]
            )

    def put_new_org(self, org: OrgRecord) -> None:
        """Add an org settings item alone (a restore from backup); never overwrites one."""
        with _aws_errors(self.table, conflict=f"org {org.org!r} already exists"):
            self.client.put_item(**self._put_new(org_to_item(org)))

    def put_new_kek(self, record: KekRecord) -> None:
        """Add a KEK item; never overwrites an existing one."""
        with _aws_errors(self.table, conflict=f"KEK {record.kek_id} already exists"):
            self.client.put_item(**self._put_new(kek_to_item(record)))

    def get_item(self, partition: str, sort_key: str) -> dict[str, Any] | None:
        """One item as DynamoDB returns it (for items that are not an org's: the CA's)."""
        return self._get(partition, sort_key)

    def put_new_item(self, item: dict[str, Any], conflict: str) -> None:
        """Add an item that must not exist yet; ``conflict`` is the error if it does."""
        with _aws_errors(self.table, conflict=conflict):
            self.client.put_item(**self._put_new(item))

    def activate(self, org: OrgRecord, new_kek: KekRecord, now: str) -> OrgRecord:
        """Make ``new_kek`` (a new item) the active KEK and retire the previous one, atomically.

        Conditional on the org's version and on the old KEK still being active, so of two
        concurrent rotations exactly one wins; the loser gets ``ConflictError``.
        """
        updated = replace(org, active_kek=new_kek.kek_id, version=org.version + 1)
        with _aws_errors(
            self.table, conflict=f"org {org.org!r} changed concurrently; re-read and retry"
        ):
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": self._put_new(kek_to_item(new_kek))},
                    {"Update": self._retire_update(org.org, org.active_kek, now)},
                    {"Update": self._org_update(org, {"active_kek": {"S": new_kek.kek_id}})},
                ]
            )
        return updated

    def activate_existing(self, org: OrgRecord, kek: KekRecord, now: str) -> OrgRecord:
        """Make a stored, never-active KEK the active one and retire the previous, atomically.

        Conditional on the org's version, the KEK's version and the old KEK still active.
        """
        updated = replace(org, active_kek=kek.kek_id, version=org.version + 1)
        with _aws_errors(
            self.table, conflict=f"org {org.org!r} changed concurrently; re-read and retry"
        ):
            self.client.transact_write_items(
                TransactItems=[
                    {"Update": self._activate_update(kek, now)},
                    {"Update": self._retire_update(org.org, org.active_kek, now)},
                    {"Update": self._org_update(org, {"active_kek": {"S": kek.kek_id}})},
                ]
            )
        return updated

    def _activate_update(self, kek: KekRecord, now: str) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": _key(kek.org, kek.kek_id),
            "UpdateExpression": "SET #s = :active, activated_at = :now, version = :next "
            "REMOVE retired_at",
            "ConditionExpression": "version = :v AND #s = :retired",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {
                ":active": {"S": "active"},
                ":retired": {"S": "retired"},
                ":now": {"S": now},
                ":v": {"N": str(kek.version)},
                ":next": {"N": str(kek.version + 1)},
            },
        }

    def update_org(self, org: OrgRecord, **changes: Any) -> OrgRecord:
        """Change fields of the org's settings item, conditional on its version.

        For the registered KMS keys (``kms_keys``, ``previous_kms_keys``, who and when) and
        the export recipients; the active KEK changes only through ``activate``.
        """
        if not set(changes) <= _ORG_UPDATABLE:
            raise InvalidRequest(f"org fields {sorted(set(changes) - _ORG_UPDATABLE)} are fixed")
        updated = replace(org, **changes, version=org.version + 1)
        item = org_to_item(updated)
        attrs = {name: item[name] for name in changes if name in item}
        gone = [name for name in changes if name not in item]
        with _aws_errors(
            self.table, conflict=f"org {org.org!r} changed concurrently; re-read and retry"
        ):
            self.client.update_item(**self._org_update(org, attrs, remove=gone))
        return updated

    def update_kek(self, record: KekRecord, **changes: Any) -> KekRecord:
        """Change attributes of a KEK item, conditional on its version (optimistic)."""
        updated = replace(record, **changes, version=record.version + 1)
        new_item = kek_to_item(updated)
        names, values, sets, removes = {}, {":v": {"N": str(record.version)}}, [], []
        for i, name in enumerate(sorted(set(changes) | {"version"})):
            attr = _ATTRIBUTE_NAMES.get(name, name)
            names[f"#a{i}"] = attr
            if attr in new_item:
                values[f":a{i}"] = new_item[attr]
                sets.append(f"#a{i} = :a{i}")
            else:
                removes.append(f"#a{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        with _aws_errors(self.table, conflict=f"KEK {record.kek_id} changed concurrently; re-read"):
            self.client.update_item(
                TableName=self.table,
                Key=_key(record.org, record.kek_id),
                UpdateExpression=expression,
                ConditionExpression="version = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return updated

    def update_cryptoperiod(self, org: OrgRecord, days: int) -> OrgRecord:
        """Record the org's new cryptoperiod (conditional on its version)."""
        value = {"N": str(days)}
        with _aws_errors(
            self.table, conflict=f"org {org.org!r} changed concurrently; re-read and retry"
        ):
            self.client.update_item(**self._org_update(org, {"cryptoperiod_days": value}))
        return replace(org, cryptoperiod_days=days, version=org.version + 1)

    def record_access_check(self, org: str, check: dict[str, str]) -> None:
        """Keep the latest access check on the org item (``error`` too when it failed).

        Not part of the org's settings: no version change, so it races with nothing, and
        backups leave it out.
        """
        names = {"#c": LAST_ACCESS_CHECK}
        values = {":c": {"M": {k: {"S": v} for k, v in check.items()}}}
        expression = "SET #c = :c"
        if check.get("state") != "ok":
            names["#e"] = LAST_ACCESS_ERROR
            expression += ", #e = :c"
        with _aws_errors(self.table):
            self.client.update_item(
                TableName=self.table,
                Key=_key(org, ORG_SORT_KEY),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(org)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def access_checks(self, org: str) -> dict[str, dict[str, str]]:
        """The latest access check and the latest failed one, as recorded (may be empty)."""
        item = self._get(org, ORG_SORT_KEY) or {}
        return {
            name: {k: v["S"] for k, v in item[name]["M"].items()}
            for name in (LAST_ACCESS_CHECK, LAST_ACCESS_ERROR)
            if name in item
        }

    def put_new_lkm_credential(self, record: LkmCredentialRecord) -> None:
        """Add a Hawk credential; an id already taken (by any org) is refused."""
        item = {
            **_key(LKM_CREDENTIALS, record.credential_id),
            "credential_org": {"S": record.org},
            "wrapped_key": {"B": record.wrapped_key},
            "kms_keys": {"L": [{"S": a} for a in record.kms_keys]},
            "created_at": {"S": record.created_at},
            "version": {"N": str(record.version)},
        }
        taken = f"the LKM credential id {record.credential_id!r} is taken"
        with _aws_errors(self.table, conflict=taken):
            self.client.put_item(**self._put_new(item))

    def get_lkm_credential(self, credential_id: str) -> LkmCredentialRecord | None:
        item = self._get(LKM_CREDENTIALS, credential_id)
        if item is None:
            return None
        return LkmCredentialRecord(
            credential_id=item["kek"]["S"],
            org=item["credential_org"]["S"],
            wrapped_key=bytes(item["wrapped_key"]["B"]),
            kms_keys=tuple(a["S"] for a in item["kms_keys"]["L"]),
            created_at=item["created_at"]["S"],
            version=int(item["version"]["N"]),
        )

    def delete_org_items(self, org: str) -> None:
        """Remove every item of an org (used only by explicit restore tests and wipes)."""
        with _aws_errors(self.table):
            for item in list(self._query(org)):
                self.client.delete_item(TableName=self.table, Key=_key(org, item["kek"]["S"]))

    # ------------------------------------------------------------ internals

    def _get(self, org: str, sort_key: str) -> dict[str, Any] | None:
        with _aws_errors(self.table):
            response = self.client.get_item(
                TableName=self.table, Key=_key(org, sort_key), ConsistentRead=True
            )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query(self, org: str) -> Iterator[dict[str, Any]]:
        with _aws_errors(self.table):
            for page in self.client.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression="org = :o",
                ExpressionAttributeValues={":o": {"S": org}},
                ConsistentRead=True,
            ):
                yield from page["Items"]

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(org) AND attribute_not_exists(kek)",
        }

    def _retire_update(self, org: str, kek_id: str, now: str) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": _key(org, kek_id),
            "UpdateExpression": "SET #s = :retired, retired_at = :now, version = version + :one",
            "ConditionExpression": "#s = :active",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {
                ":retired": {"S": "retired"},
                ":active": {"S": "active"},
                ":now": {"S": now},
                ":one": {"N": "1"},
            },
        }

    def _org_update(
        self, org: OrgRecord, attrs: dict[str, Any], remove: Sequence[str] = ()
    ) -> dict[str, Any]:
        names = {f"#a{i}": k for i, k in enumerate(attrs)}
        names |= {f"#r{i}": k for i, k in enumerate(remove)}
        values = {f":a{i}": v for i, v in enumerate(attrs.values())}
        sets = "".join(f"#a{i} = :a{i}, " for i in range(len(attrs)))
        removes = " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove))) if remove else ""
        return {
            "TableName": self.table,
            "Key": _key(org.org, ORG_SORT_KEY),
            "UpdateExpression": f"SET {sets}version = :next{removes}",
            "ConditionExpression": "version = :v",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                **values,
                ":v": {"N": str(org.version)},
                ":next": {"N": str(org.version + 1)},
            },
        }


_ATTRIBUTE_NAMES = {"kek_id": "kek"}
_ORG_UPDATABLE = frozenset(
    {"kms_keys", "previous_kms_keys", "kms_keys_set_by", "kms_keys_set_at", "export_recipients"}
)


def _key(org: str, sort_key: str) -> dict[str, Any]:
    return {"org": {"S": org}, "kek": {"S": sort_key}}


class _aws_errors:
    """DynamoDB errors become library errors through ``aws.error_for``, with two of our own:
    a lost condition is a ``ConflictError``, and a missing table a ``ConfigurationError``."""

    def __init__(self, table: str, conflict: str | None = None) -> None:
        self.table = table
        self.conflict = conflict

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, KmsBridgeError):
            return
        if not isinstance(exc, ClientError | BotoCoreError):
            return
        if isinstance(exc, ClientError):
            code = client_error_code(exc)
            reasons = str(exc.response.get("CancellationReasons", ""))
            if self.conflict and (
                code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons
            ):
                raise ConflictError(self.conflict) from exc
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"the key table {self.table!r} does not exist in this account and region "
                    "(Terraform makes it; kmsbridge table create for development)"
                ) from exc
            if code == "ResourceInUseException":
                raise InvalidRequest(f"the key table {self.table!r} already exists") from exc
        raise error_for(exc, "dynamodb", what=f"the key table {self.table!r}") from exc


# ---------------------------------------------------------------- item codecs


def org_to_item(org: OrgRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(org.org, ORG_SORT_KEY),
        "kms_keys": {"L": [{"S": a} for a in org.kms_keys]},
        "cryptoperiod_days": {"N": str(org.cryptoperiod_days)},
        "active_kek": {"S": org.active_kek},
        "created_at": {"S": org.created_at},
        "version": {"N": str(org.version)},
    }
    if org.previous_kms_keys:
        item["previous_kms_keys"] = {"L": [{"S": a} for a in org.previous_kms_keys]}
    for name in ("kms_keys_set_by", "kms_keys_set_at"):
        if getattr(org, name) is not None:
            item[name] = {"S": getattr(org, name)}
    if org.export_recipients:
        item["export_recipients"] = {"L": [_recipient_to_item(r) for r in org.export_recipients]}
    return item


def org_from_item(item: dict[str, Any]) -> OrgRecord:
    def strings(name: str) -> tuple[str, ...]:
        return tuple(a["S"] for a in item.get(name, {"L": []})["L"])

    return OrgRecord(
        org=item["org"]["S"],
        kms_keys=strings("kms_keys"),
        cryptoperiod_days=int(item["cryptoperiod_days"]["N"]),
        active_kek=item["active_kek"]["S"],
        created_at=item["created_at"]["S"],
        version=int(item["version"]["N"]),
        previous_kms_keys=strings("previous_kms_keys"),
        kms_keys_set_by=item.get("kms_keys_set_by", {}).get("S"),
        kms_keys_set_at=item.get("kms_keys_set_at", {}).get("S"),
        export_recipients=tuple(
            _recipient_from_item(r["M"]) for r in item.get("export_recipients", {"L": []})["L"]
        ),
    )


def _recipient_to_item(recipient: ExportRecipient) -> dict[str, Any]:
    fields = {
        name: {"S": getattr(recipient, name)}
        for name in ("recipient_id", "kind", "label", "added_by", "added_at")
    }
    if recipient.material is not None:
        fields["material"] = {"B": recipient.material}
    return {"M": fields}


def _recipient_from_item(fields: dict[str, Any]) -> ExportRecipient:
    material = fields.get("material")
    return ExportRecipient(
        recipient_id=fields["recipient_id"]["S"],
        kind=fields["kind"]["S"],
        label=fields["label"]["S"],
        added_by=fields["added_by"]["S"],
        added_at=fields["added_at"]["S"],
        material=bytes(material["B"]) if material is not None else None,
    )


_OPTIONAL_STRINGS = (
    "activated_at",
    "retired_at",
    "destroyed_at",
    "destroyed_by",
    "lkm_keypair_id",
)


def kek_to_item(record: KekRecord) -> dict[str, Any]:
    if record.state not in STATES:
        raise InvalidRequest(f"unknown KEK state {record.state!r}")
    item: dict[str, Any] = {
        **_key(record.org, record.kek_id),
        "public_key": {"B": record.public_key},
        "kms_keys": {"L": [{"S": a} for a in record.kms_keys]},
        "state": {"S": record.state},
        "created_at": {"S": record.created_at},
        "source": {"S": record.source},
        "version": {"N": str(record.version)},
    }
    if record.wrapped_private_key is not None:
        item["wrapped_private_key"] = {"B": record.wrapped_private_key}
    if record.certificate is not None:
        item["certificate"] = {"B": record.certificate}
    if record.certificate_chain:
        item["certificate_chain"] = {"L": [{"B": c} for c in record.certificate_chain]}
    for name in _OPTIONAL_STRINGS:
        value = getattr(record, name)
        if value is not None:
            item[name] = {"S": value}
    return item


def kek_from_item(item: dict[str, Any]) -> KekRecord:
    def optional(name: str, kind: str) -> Any:
        return item[name][kind] if name in item else None

    return KekRecord(
        org=item["org"]["S"],
        kek_id=item["kek"]["S"],
        public_key=bytes(item["public_key"]["B"]),
        wrapped_private_key=optional("wrapped_private_key", "B"),
        kms_keys=tuple(a["S"] for a in item.get("kms_keys", {"L": []})["L"]),
        state=_state(item["state"]["S"]),
        created_at=item["created_at"]["S"],
        source=item.get("source", {"S": "generated"})["S"],
        certificate=optional("certificate", "B"),
        certificate_chain=tuple(
            bytes(c["B"]) for c in item.get("certificate_chain", {"L": []})["L"]
        ),
        version=int(item["version"]["N"]),
        **{name: optional(name, "S") for name in _OPTIONAL_STRINGS},
    )


def _state(word: str) -> KekState:
    try:
        return KekState(word)
    except ValueError:
        raise IntegrityError(f"the key table holds an unknown KEK state {word!r}") from None
