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


RECIPIENT_KINDS = ("cert", "pgp", "kms")


@dataclass(frozen=True)
class ExportRecipient:
    """One export recipient registered for an org (``export recipients add``).

    ``recipient_id`` names it in job records and messages: ``cert:<SHA-256 of the DER>``,
    ``pgp:<OpenPGP fingerprint>`` or ``kms:<key ARN>``. ``material`` is the certificate's
    DER or the armored OpenPGP public key (none for a KMS key); ``label`` is for people.
    """

    recipient_id: str
    kind: str
    label: str
    added_by: str
    added_at: str
    material: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OrgRecord:
    """An org's settings item.

    ``kms_keys`` are the org's registered KMS keys: what new KEKs are wrapped under, fixed
    at ``org add`` and changed only by ``org set-kms-keys`` (who and when in
    ``kms_keys_set_by`` / ``kms_keys_set_at``). ``previous_kms_keys`` are the keys they
    replaced while a rewrap moves the org's KEKs off them: still accepted to unwrap, never
    to wrap, dropped when no KEK lists them.
    """

    org: str
    kms_keys: tuple[str, ...]
    cryptoperiod_days: int
    active_kek: str
    created_at: str
    version: int = 1
    previous_kms_keys: tuple[str, ...] = ()
    kms_keys_set_by: str | None = None
    kms_keys_set_at: str | None = None
    export_recipients: tuple[ExportRecipient, ...] = ()

    @property
    def unwrap_kms_keys(self) -> tuple[str, ...]:
        """Every ARN a KEK of this org may be unwrapped under: current and previous keys."""
        return tuple(dict.fromkeys((*self.kms_keys, *self.previous_kms_keys)))


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
