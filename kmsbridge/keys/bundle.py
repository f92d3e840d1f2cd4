"""Public-key bundles: what an encryptor that cannot reach AWS needs, and nothing secret.

``{"kmsbridge_bundle": 1, "org": ..., "kek": ..., "public_key": <base64 SPKI DER>,
"not_after": <ISO 8601 UTC>}``. The KEK id is recomputed from the key, so a bundle whose
key and id disagree is refused, and so is one past ``not_after``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import datetime
from typing import Any

from kmsbridge.clock import parse_iso, utcnow
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import InvalidRequest
from kmsbridge.files import atomic_output
from kmsbridge.keys.policy import check_not_expired


def write_bundle(
    bundle: dict[str, Any], path: str | os.PathLike[str], *, replace: bool = True
) -> None:
    """Write the bundle whole; with ``replace=False`` an existing file is refused."""
    with atomic_output(path, replace=replace) as out:
        out.write(json.dumps(bundle, indent=2, sort_keys=True).encode("utf-8") + b"\n")


def read_bundle(
    path: str | os.PathLike[str], org: str, *, now: datetime | None = None
) -> KekPublicKey:
    """The public key of a bundle for ``org``; refuses another org's, a bad or expired one."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
        if data.get("kmsbridge_bundle") != BUNDLE_VERSION:
            raise InvalidRequest(f"{path} is not a kmsbridge public-key bundle")
        key = KekPublicKey.from_der(base64.b64decode(data["public_key"], validate=True))
        until = parse_iso(data["not_after"])
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidRequest(
            f"cannot read the public-key bundle {path}: {type(exc).__name__}"
        ) from None
    if data.get("org") != org:
        raise InvalidRequest(f"the bundle is for org {data.get('org')!r}, not {org!r}")
    if key.kek_id != data.get("kek"):
        raise InvalidRequest("the bundle's KEK id does not match its public key")
    check_not_expired(org, until, now or utcnow())
    return key


BUNDLE_VERSION = 1
