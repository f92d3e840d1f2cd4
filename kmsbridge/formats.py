"""Every algorithm choice and limit, named once, and the pure checks on names and ids.

See DESIGN.md "Formats". Nothing here talks to AWS or holds a secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TypeGuard

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from kmsbridge.errors import InvalidRequest

# Encryption-context keys. The org key binds every KMS call and every recording to one org.
CONTEXT_ORG = "kmsbridge:org"
CONTEXT_RECORDING = "kmsbridge:recording"
CONTEXT_KEK = "kmsbridge:kek"
CONTEXT_PURPOSE = "kmsbridge:purpose"
PURPOSE_KEK = "kek"
# A Hawk key of the LKM endpoint, wrapped under the org's KMS keys (integrations/lkm).
CONTEXT_LKM_CREDENTIAL = "kmsbridge:lkm-credential"
PURPOSE_LKM_CREDENTIAL = "lkm-credential"
RESERVED_CONTEXT_PREFIXES = ("kmsbridge:", "aws-crypto-")

# The recording message: ESDK message format v2, AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0478).
# No signature: the encrypting side holds only a public key, so a signature proves nothing.
MESSAGE_VERSION = 2
RECORDING_SUITE_ID = 0x0478
DATA_KEY_BYTES = 32
MESSAGE_ID_BYTES = 32
COMMITMENT_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
# Chosen by bench/ (BENCHMARKS.md, "frame length"): at 64 KiB the per-frame cost (~3 us) is
# under 10 % of AES-GCM's and the codec runs within ~10 % of a plain AES-GCM loop, I/O-bound
# on files; larger frames gain 10-15 % CPU in memory only, while a short seek must read two
# whole frames (128 KiB here, 2 MiB at 1 MiB frames). The ESDK reads it (tests).
FRAME_LENGTH = 64 * 1024
# The longest frame decrypted (and written): a longer one is INTEGRITY before any buffer is
# sized by it. A frame is authenticated whole before release, so a reader holds a few of
# them; a 650-byte recording made from the public key alone could otherwise announce 4 GiB
# frames. kmsbridge writes 64 KiB, the ESDK 4 KiB by default; 4 MiB leaves other writers
# room (bench/ sweeps up to it) and bounds a stream's buffers to about 16 MiB.
MAX_FRAME_LENGTH = 4 * 1024 * 1024
MAX_FRAME_COUNT = 2**32 - 1
# One RSA-OAEP EDK is what kmsbridge writes; a few more are tolerated from other writers.
MAX_ENCRYPTED_DATA_KEYS = 3
# A 4096-bit EDK and a generous context stay far below this.
MAX_HEADER_BYTES = 16 * 1024
# Non-framed bodies (other ESDK writers only) are authenticated whole before any byte is
# released, so they are held in memory and must be small.
MAX_NON_FRAMED_BYTES = 64 * 1024 * 1024
# A decrypted range is held in memory until all its frames authenticated (ranges.py).
MAX_RANGE_BYTES = 64 * 1024 * 1024

# The recording's data key is wrapped by the KEK public key: raw RSA, OAEP, SHA-256, MGF1-SHA-256.
PROVIDER_ID = "kmsbridge"
KEK_KEY_SIZES = (3072, 4096)
DEFAULT_KEK_BITS = 3072
MIN_IMPORTED_RSA_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537


def oaep_padding() -> padding.OAEP:
    """RSA-OAEP with SHA-256 and MGF1-SHA-256: the data-key wrapping of every recording."""
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


# Key transport (``Decryptor.key_transport``): RSA decryption of a content key that another
# system encrypted to a KEK. Each padding has a name; a KEK decrypts only the paddings of
# what it was registered as (its ``source``): an imported key the ones CMS/PKCS#7 files
# use, a Genesys Cloud LKM key pair the two of the LKM contract. Generated recording KEKs
# do no key transport at all (a padding oracle on them would reach every recording).
PADDING_PKCS1V15 = "rsa-pkcs1v15"
PADDING_LKM_OAEP = "rsa-oaep-sha1-mgf1-sha1"
_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
CMS_PADDINGS = frozenset(
    {PADDING_PKCS1V15} | {f"rsa-oaep-{h}-mgf1-{m}" for h in _OAEP_HASHES for m in _OAEP_HASHES}
)
LKM_PADDINGS = frozenset({PADDING_LKM_OAEP, PADDING_PKCS1V15})
KEY_TRANSPORT_PADDINGS: dict[str, frozenset[str]] = {"imported": CMS_PADDINGS, "lkm": LKM_PADDINGS}


def oaep_padding_name(digest: str, mgf_digest: str) -> str:
    """The key-transport name of RSA-OAEP with these hashes (``sha1`` ... ``sha512``)."""
    name = f"rsa-oaep-{digest}-mgf1-{mgf_digest}"
    if name not in CMS_PADDINGS:
        raise InvalidRequest("RSA-OAEP with a hash other than SHA-1 or SHA-2 is not supported")
    return name


def key_transport_padding(name: str) -> padding.AsymmetricPadding:
    """The padding object of a key-transport padding name."""
    if name == PADDING_PKCS1V15:
        return padding.PKCS1v15()
    if name not in CMS_PADDINGS:
        raise InvalidRequest(f"unknown key-transport padding {name!r}")
    _, _, digest, _, mgf_digest = name.split("-")
    return padding.OAEP(
        mgf=padding.MGF1(_OAEP_HASHES[mgf_digest]()),
        algorithm=_OAEP_HASHES[digest](),
        label=None,
    )


_ORG_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEK_ID_RE = re.compile(r"[0-9a-f]{64}")
_RECORDING_ID_MAX = 512
_METADATA_MAX_ENTRIES = 16
_METADATA_MAX_CHARS = 1024


def validate_org(org: object) -> str:
    """An org id is 1-64 of ``[A-Za-z0-9._-]``; anything else is refused before any AWS call."""
    if not isinstance(org, str) or not _ORG_RE.fullmatch(org):
        raise InvalidRequest("org must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    return org


def is_kek_id(text: object) -> TypeGuard[str]:
    """A KEK id: 64 lowercase hex characters (the SHA-256 of the public key's SPKI DER)."""
    return isinstance(text, str) and _KEK_ID_RE.fullmatch(text) is not None


def validate_kek_id(kek_id: object) -> str:
    if not is_kek_id(kek_id):
        raise InvalidRequest("a KEK id is 64 lowercase hex characters (SHA-256 of the public key)")
    return kek_id


def validate_recording_id(recording_id: object) -> str:
    if (
        not isinstance(recording_id, str)
        or not 0 < len(recording_id) <= _RECORDING_ID_MAX
        or not recording_id.isprintable()
    ):
        raise InvalidRequest(f"recording id must be 1-{_RECORDING_ID_MAX} printable characters")
    return recording_id


def kek_id_of(spki_der: bytes) -> str:
    """The KEK id: lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo DER."""
    return hashlib.sha256(spki_der).hexdigest()


def kek_context(org: str, kek_id: str) -> dict[str, str]:
    """The encryption context of a wrapped KEK private key (and of its KMS calls)."""
    return {CONTEXT_ORG: org, CONTEXT_KEK: kek_id, CONTEXT_PURPOSE: PURPOSE_KEK}


def lkm_credential_context(org: str, credential_id: str) -> dict[str, str]:
    """The encryption context of a wrapped Hawk key of the Genesys Cloud LKM endpoint."""
    return {
        CONTEXT_ORG: org,
        CONTEXT_LKM_CREDENTIAL: credential_id,
        CONTEXT_PURPOSE: PURPOSE_LKM_CREDENTIAL,
    }


def recording_context(
    org: str, recording_id: str, metadata: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The authenticated, in-clear context of a recording: org, recording id, caller metadata.

    Metadata may use ``kmsbridge:`` keys other than org and recording (for example
    ``kmsbridge:media``), never ``aws-crypto-`` keys, which the ESDK reserves.
    """
    context = {
        CONTEXT_ORG: validate_org(org),
        CONTEXT_RECORDING: validate_recording_id(recording_id),
    }
    extra = dict(metadata or {})
    if len(extra) > _METADATA_MAX_ENTRIES:
        raise InvalidRequest(f"at most {_METADATA_MAX_ENTRIES} metadata entries")
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidRequest("metadata keys and values must be non-empty strings")
        if key in context or key.startswith("aws-crypto-"):
            raise InvalidRequest(f"metadata key {key!r} is reserved")
        if len(key) + len(value) > _METADATA_MAX_CHARS:
            raise InvalidRequest(f"metadata entry {key!r} is longer than {_METADATA_MAX_CHARS}")
        context[key] = value
    return context
