"""The export manifest: what was exported, for whom, and the hashes that prove it.

``manifest.json`` (in an archive, or in a bulk job's folder) holds the org, when, the
recipient (``ExportTarget.describe``) and one entry per recording: its id, the exported
file's name, the plaintext's size and SHA-256, the exported file's SHA-256
(``file_sha256``) and the KEK that had encrypted it. Written with sorted keys and a
two-space indent; its bytes are what ``export/signing.py`` signs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kmsbridge.clock import iso, utcnow

MANIFEST_NAME = "manifest.json"


def manifest_json(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's bytes as written (and signed): sorted keys, two-space indent."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def make_manifest(
    org: str, target: Mapping[str, str], entries: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, Any]:
    """The manifest: org, when, for whom (``ExportTarget.describe``), and each recording."""
    return {
        "kmsbridge_export": 1,
        "org": org,
        "created_at": iso(now or utcnow()),
        **target,
        "recordings": entries,
    }


_SAFE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def entry_name(recording_id: str, suffix: str) -> str:
    """A file name for a recording id: itself if safe, else a safe prefix and a short hash."""
    if _SAFE.fullmatch(recording_id) and recording_id not in (".", ".."):
        return f"recordings/{recording_id}{suffix}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", recording_id)[:80]
    digest = hashlib.sha256(recording_id.encode("utf-8")).hexdigest()[:12]
    return f"recordings/{safe}-{digest}{suffix}"
