"""Remembered Hawk nonces: a request is accepted once per (credential id, nonce).

A nonce is remembered until its timestamp leaves the window (``ts + skew``); after that
the timestamp check refuses the request anyway. Two stores:

- ``MemoryNonceStore``: one container. Bounded: when full of live nonces it forgets the
  oldest one and from then on refuses every timestamp up to that one's (a "floor"), so a
  full store costs availability for old timestamps, never a replay.
- ``DynamoNonceStore``: several containers (Lambda scales out): one conditional put per
  request in a table with TTL on ``expires_at``. TTL deletes lazily, so an expired item
  left in the table counts as absent in the condition. Any table failure refuses the
  request (fail closed: ``UNAVAILABLE``, retryable, when DynamoDB throttles or is down).
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import client_error_code, error_for

DEFAULT_MAX_NONCES = 100_000


class NonceStore(Protocol):
    def first_use(self, credential_id: str, nonce: str, ts: int, *, now: float) -> bool:
        """True the first time (and records it); False for a replay within the window."""
        ...


class MemoryNonceStore:
    """Thread-safe, bounded by count; see the module docstring for what "full" does."""

    def __init__(self, skew: float, max_entries: int = DEFAULT_MAX_NONCES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.skew = skew
        self.max_entries = max_entries
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._floor = float("-inf")
        self._lock = threading.Lock()

    def first_use(self, credential_id: str, nonce: str, ts: int, *, now: float) -> bool:
        key = (credential_id, nonce)
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                self._seen.discard(heapq.heappop(self._expiry)[1])
            if ts <= self._floor or key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                expires, oldest = heapq.heappop(self._expiry)
                self._seen.discard(oldest)
                self._floor = max(self._floor, expires - self.skew)
                if ts <= self._floor:
                    return False
            self._seen.add(key)
            heapq.heappush(self._expiry, (ts + self.skew, key))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


class DynamoNonceStore:
    """Nonces in a DynamoDB table: partition key ``nonce`` (S), TTL attribute ``expires_at``."""

    def __init__(self, client: Any, table: str, skew: float) -> None:
        self.client = client
        self.table = table
        self.skew = skew

    def first_use(self, credential_id: str, nonce: str, ts: int, *, now: float) -> bool:
        # A digest keeps the key short and free of the id's and nonce's characters.
        key = hashlib.sha256(f"{credential_id}\n{nonce}".encode()).hexdigest()
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"nonce": {"S": key}, "expires_at": {"N": str(int(ts + self.skew) + 1)}},
                ConditionExpression="attribute_not_exists(nonce) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and (
                client_error_code(exc) == "ConditionalCheckFailedException"
            ):
                return False
            raise error_for(exc, "dynamodb", what="the Hawk nonce table") from exc
        return True

    def create_table(self) -> None:
        """Development and tests only; production tables come from Terraform (with TTL on)."""
        self.client.create_table(
            TableName=self.table,
            AttributeDefinitions=[{"AttributeName": "nonce", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "nonce", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.get_waiter("table_exists").wait(TableName=self.table)
        self.client.update_time_to_live(
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
