"""Cryptoperiods: how long a KEK may encrypt, and the checks an encryptor makes on it."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from kmsbridge.clock import iso, parse_iso
from kmsbridge.errors import InvalidRequest
from kmsbridge.keys.records import KekRecord, OrgRecord

MIN_CRYPTOPERIOD_DAYS = 1


# NIST SP 800-57 Part 1, 5.3.6: one to two years for a public key-transport key.
MAX_CRYPTOPERIOD_DAYS = 730


def validate_cryptoperiod(days: int) -> int:
    if not MIN_CRYPTOPERIOD_DAYS <= days <= MAX_CRYPTOPERIOD_DAYS:
        raise InvalidRequest(
            f"cryptoperiod must be {MIN_CRYPTOPERIOD_DAYS} to {MAX_CRYPTOPERIOD_DAYS} days"
        )
    return days


def not_after(org: OrgRecord, kek: KekRecord) -> datetime:
    """When the active KEK stops encrypting: its cryptoperiod's end, or its certificate's.

    An imported KEK keeps its X.509 certificate; once that expires, the key encrypts
    nothing new (it still decrypts).
    """
    started = parse_iso(kek.activated_at or kek.created_at)
    until = started + timedelta(days=org.cryptoperiod_days)
    if kek.certificate is not None:
        until = min(until, x509.load_der_x509_certificate(kek.certificate).not_valid_after_utc)
    return until


def check_certificate_started(org: str, kek: KekRecord, now: datetime) -> None:
    """An imported KEK whose certificate is not valid yet encrypts nothing yet."""
    if kek.certificate is None:
        return
    starts = x509.load_der_x509_certificate(kek.certificate).not_valid_before_utc
    if now < starts:
        raise InvalidRequest(
            f"the active KEK of org {org!r} has a certificate not valid before {iso(starts)}; "
            "it encrypts nothing until then"
        )


def check_not_expired(org: str, until: datetime, now: datetime) -> None:
    if now >= until:
        raise InvalidRequest(
            f"the active KEK of org {org!r} passed its cryptoperiod (or its certificate "
            f"expired) on {iso(until)}; "
            f"rotate it first: kmsbridge kek rotate {org}"
        )
