"""Public-key bundles from the key table, for encryptors that cannot reach AWS."""

from __future__ import annotations

import base64
from typing import Any

from kmsbridge.clock import iso
from kmsbridge.formats import validate_org
from kmsbridge.keys.bundle import BUNDLE_VERSION
from kmsbridge.keys.policy import not_after
from kmsbridge.keys.table import KeyStore


def bundle_for(store: KeyStore, org: str) -> dict[str, Any]:
    org_record, kek = store.active_kek(validate_org(org))
    return {
        "kmsbridge_bundle": BUNDLE_VERSION,
        "org": org,
        "kek": kek.kek_id,
        "public_key": base64.b64encode(kek.public_key).decode("ascii"),
        "not_after": iso(not_after(org_record, kek)),
    }
