"""KEK and org records of the key table, and the states a KEK goes through.

States: ``active`` (the one KEK new recordings use; at most one per org) -> ``retired``
(decrypt only) -> ``destroyed`` (crypto-shredded: the wrapped private key is removed, a
tombstone with the public key, when and who stays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class KekState(StrEnum):
    """A KEK's state; a ``str`` too, so it is stored and compared as the word itself."""

    ACTIVE = "active"
    RETIRED = "retired"
    DESTROYED = "destroyed"


STATES = tuple(KekState)

DEFAULT_CRYPTOPERIOD_DAYS = 90


@dataclass(frozen=True)
class OrgRecord:
    org: str
    kms_keys: tuple[str, ...]
    cryptoperiod_days: int
    active_kek: str
    created_at: str
    version: int = 1


@dataclass(frozen=True)
class KekRecord:
    org: str
    kek_id: str
    public_key: bytes = field(repr=False)
    wrapped_private_key: bytes | None = field(repr=False)
    kms_keys: tuple[str, ...]
    state: KekState | str  # the table's word; kek_from_item makes it a KekState
    created_at: str
    source: str = "generated"
    activated_at: str | None = None
    retired_at: str | None = None
    certificate: bytes | None = field(default=None, repr=False)
    # The certificate's issuers (DER, nearest first) when they are not the platform CA's.
    certificate_chain: tuple[bytes, ...] = field(default=(), repr=False)
    destroyed_at: str | None = None
    destroyed_by: str | None = None
    lkm_keypair_id: str | None = None  # source "lkm": the key pair id Genesys Cloud knows
    version: int = 1


@dataclass(frozen=True)
class LkmCredentialRecord:
    """A Hawk credential of the LKM endpoint: its key wrapped under the org's KMS keys."""

    credential_id: str
    org: str
    wrapped_key: bytes = field(repr=False)
    kms_keys: tuple[str, ...]
    created_at: str
    version: int = 1
