"""What the LKM endpoint does with keys: Hawk credentials, key pairs, decrypts.

- A **credential** is a Hawk id and a random key, bound to one org. Hawk needs the key
  itself to compute the MAC (it is a shared secret, not a password), so the key table
  holds it wrapped under the org's KMS keys (ESDK, context org + credential id + purpose
  ``lkm-credential``): the table alone authenticates no one, and the customer's
  revocation stops authentication too. Unwrapped keys are cached like KEKs, bounded by
  the decryptor's ``max_age``.
- A **key pair** is a KEK of the org (RSA-3072, generated, wrapped under the org's KMS
  keys like every KEK) with ``source`` ``lkm``, state ``retired`` (it never encrypts
  kmsbridge recordings; Genesys Cloud encrypts to it) and a random RFC 4122 UUID, the
  id Genesys Cloud knows, recorded beside its KEK id. A new key pair is a rotation: the
  old ones keep decrypting, since Genesys keeps sending their ids.
- A **decrypt** is ``Decryptor.key_transport`` with the padding the request asked for,
  allowed only because the KEK's source is ``lkm`` (formats.KEY_TRANSPORT_PADDINGS).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from cryptography.hazmat.primitives import serialization

from kmsbridge.clock import iso, parse_iso, utcnow
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.cache import TtlCache
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import AccessRevoked, InvalidRequest
from kmsbridge.formats import lkm_credential_context, validate_org
from kmsbridge.integrations.lkm.hawk import Credential, validate_credential_id
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.records import KekRecord, KekState, LkmCredentialRecord
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import make_kek

K = TypeVar("K")
V = TypeVar("V")
LKM_SOURCE = "lkm"
HAWK_KEY_BYTES = 32
_MAX_REMEMBERED = 4096


@dataclass(frozen=True)
class Keypair:
    """An LKM key pair as Genesys Cloud sees it, and the KEK behind it."""

    id: str
    org: str
    kek_id: str
    spki_der: bytes = field(repr=False)
    created_at: str

    @classmethod
    def of(cls, record: KekRecord) -> Keypair:
        assert record.lkm_keypair_id is not None
        return cls(
            record.lkm_keypair_id, record.org, record.kek_id, record.public_key, record.created_at
        )

    @property
    def public_key(self) -> str:
        """Base64 of the PKCS#1 RSAPublicKey DER (a SEQUENCE of two INTEGERs), as Genesys wants."""
        key = KekPublicKey.from_der(self.spki_der).key
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return base64.b64encode(der).decode()

    @property
    def date_created(self) -> int:
        return int(parse_iso(self.created_at).timestamp() * 1000)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "publicKey": self.public_key, "dateCreated": self.date_created}


class LkmService:
    """Credentials, key pairs and decrypts over one key table, KMS wrapper and decryptor."""

    def __init__(
        self,
        store: KeyStore,
        wrapper: KekWrapper,
        decryptor: Decryptor,
        *,
        allowed_orgs: frozenset[str] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.allowed_orgs = allowed_orgs
        self.wrapper = wrapper
        self.decryptor = decryptor
        self._credentials: TtlCache[Credential] = TtlCache(decryptor.keks.max_age, 1024, now)
        # Facts that never change once written (a credential's org, a key pair's KEK):
        # remembered without age, bounded by count.
        self._credential_orgs: dict[str, str] = {}
        self._keypairs: dict[tuple[str, str], Keypair] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ credentials

    def create_credential(
        self, org: str, credential_id: str, *, now: datetime | None = None
    ) -> Credential:
        """A new Hawk credential for ``org`` (the key is shown once, to the caller)."""
        try:
            validate_credential_id(credential_id)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        org_record = self.store.get_org(validate_org(org))
        key = secrets.token_urlsafe(HAWK_KEY_BYTES).encode()
        context = lkm_credential_context(org, credential_id)
        arns = org_record.kms_keys
        blob = self.wrapper.wrap_secret(key, context, arns, org=org, registered=arns)
        # Proof that the blob unwraps under the org's keys before it is stored.
        if self.wrapper.unwrap_secret(blob, context, arns, org=org, registered=arns) != key:
            raise InvalidRequest("the wrapped Hawk key did not unwrap to itself")
        record = LkmCredentialRecord(
            credential_id, org, blob, org_record.kms_keys, iso(now or utcnow())
        )
        self.store.put_new_lkm_credential(record)
        return Credential(credential_id, org, key)

    def credential(self, credential_id: str) -> Credential | None:
        """The credential with this id (its key unwrapped, or cached), or None.

        None too for an org outside ``allowed_orgs`` (``KMSBRIDGE_ALLOWED_ORGS``): this
        deployment does not serve it, and its key is not unwrapped.
        """
        org = self._credential_orgs.get(credential_id)
        if org is not None:
            cached = self._credentials.get((org, credential_id))
            if cached is not None:
                return cached
        record = self.store.get_lkm_credential(credential_id)
        if record is None or (self.allowed_orgs and record.org not in self.allowed_orgs):
            return None
        self._remember(self._credential_orgs, credential_id, record.org)
        try:
            credential, _ = self._credentials.get_or_load(
                (record.org, credential_id), lambda: self._unwrap_credential(record)
            )
        except AccessRevoked:
            self.evict_org(record.org)
            raise
        return credential

    def _unwrap_credential(self, record: LkmCredentialRecord) -> Credential:
        context = lkm_credential_context(record.org, record.credential_id)
        # Only under KMS keys the org registers, whatever the credential item says.
        registered = self.store.get_org(record.org).unwrap_kms_keys
        key = self.wrapper.unwrap_secret(
            record.wrapped_key, context, record.kms_keys, org=record.org, registered=registered
        )
        return Credential(record.credential_id, record.org, key)

    # ------------------------------------------------------------ key pairs

    def create_keypair(self, org: str, *, now: datetime | None = None) -> Keypair:
        """A new LKM key pair (an RSA-3072 KEK wrapped under the org's KMS keys)."""
        org_record = self.store.get_org(validate_org(org))
        kek = make_kek(
            self.wrapper,
            org=org,
            kms_key_arns=org_record.kms_keys,
            now=now or utcnow(),
            state=KekState.RETIRED,
        )
        record = replace(kek, source=LKM_SOURCE, lkm_keypair_id=str(uuid.uuid4()))
        self.store.put_new_kek(record)
        keypair = Keypair.of(record)
        self._remember(self._keypairs, (org, keypair.id), keypair)
        return keypair

    def keypairs(self, org: str) -> list[Keypair]:
        """Every LKM key pair of the org, oldest first (destroyed ones excluded)."""
        records = self.store.list_keks(validate_org(org))
        found = [
            Keypair.of(r)
            for r in records
            if r.source == LKM_SOURCE and r.lkm_keypair_id and r.state != KekState.DESTROYED
        ]
        for keypair in found:
            self._remember(self._keypairs, (org, keypair.id), keypair)
        return sorted(found, key=lambda k: (k.created_at, k.id))

    def keypair(self, org: str, keypair_id: str) -> Keypair | None:
        """The org's key pair with this id, or None (another org's is None too)."""
        cached = self._keypairs.get((org, keypair_id))
        if cached is not None:
            return cached
        return next((k for k in self.keypairs(org) if k.id == keypair_id), None)

    # ------------------------------------------------------------ decrypt

    def decrypt(
        self,
        keypair: Keypair,
        ciphertext: bytes,
        padding: str,
        *,
        request_id: str | None = None,
        **audit_fields: str | None,
    ) -> bytes:
        """The data key Genesys Cloud encrypted to the key pair (one audit line)."""
        try:
            return self.decryptor.key_transport(
                keypair.org,
                keypair.kek_id,
                ciphertext,
                padding,
                op="lkm-decrypt",
                request_id=request_id,
                keypair=keypair.id,
                **audit_fields,
            )
        except AccessRevoked:
            self.evict_org(keypair.org)
            raise

    def evict_org(self, org: str) -> None:
        """Forget the org's unwrapped Hawk keys and KEKs now (an access refusal)."""
        self._credentials.evict_org(org)
        self.decryptor.evict_org(org)

    def _remember(self, table: dict[K, V], key: K, value: V) -> None:
        with self._lock:
            if len(table) >= _MAX_REMEMBERED:
                table.clear()
            table[key] = value
