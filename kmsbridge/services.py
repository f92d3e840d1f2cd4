"""The one place that reads kmsbridge's settings and wires clients, key table and decryptor.

Settings come from arguments (the CLI's flags), else from the environment the Lambda
handlers and the CLI share: ``KMSBRIDGE_TABLE``, ``KMSBRIDGE_MAX_AGE_SECONDS``,
``KMSBRIDGE_PLAYBACK_BUCKET``, ``KMSBRIDGE_ALLOWED_ORGS``, ``KMSBRIDGE_ROTATION_LEAD_HOURS``,
``KMSBRIDGE_EXPORT_BUCKET`` (the only bucket the jobs function exports to),
``KMSBRIDGE_REQUIRE_SEALED`` (``1``: the decryptor's ``unwrap`` releases data keys only
sealed to a response key; ``0`` or unset: also bare), the encryptor's pinned CAs
(``KMSBRIDGE_CA_FILE``, ``KMSBRIDGE_CA_FINGERPRINT``, ``KMSBRIDGE_CUSTOMER_CA_DIR``: one
``ORG.pem`` per org with imported keys), ``KMSBRIDGE_CA_KEY_ARN`` (the platform CA's KMS
key, when given the only one that signs), the LKM endpoint's ``KMSBRIDGE_LKM_*``
(see ``Settings``), and boto3's own (``AWS_REGION``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL``). A bad value is a ``ConfigurationError`` naming
the variable. The command line also reads a config file (``Settings.for_cli``): flags win
over the environment, which wins over the file. ``Services`` builds each piece on first
use and keeps it: a Lambda container keeps one for its lifetime, the CLI makes one per
command.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.trust import TrustAnchors, load_trust
from kmsbridge.decryptor.decryptor import DEFAULT_MAX_AGE_SECONDS, Decryptor
from kmsbridge.errors import ConfigurationError, InvalidRequest
from kmsbridge.formats import validate_org
from kmsbridge.keys.ca import KmsSigner, get_ca
from kmsbridge.keys.kms import KekWrapper, region_of
from kmsbridge.keys.table import DEFAULT_TABLE, KeyStore
from kmsbridge.lifecycle.certification import KekCertifier

# The scheduled rotation runs this long before a period ends (a daily schedule is never late).
DEFAULT_ROTATION_LEAD_HOURS = 24
MAX_AGE_LIMIT_SECONDS = 3600
MAX_ROTATION_LEAD_HOURS = 720
# The Hawk timestamp window of the LKM endpoint (Hawk's own default), and its upper limit.
DEFAULT_LKM_SKEW_SECONDS = 60.0
MAX_LKM_SKEW_SECONDS = 600.0


@dataclass(frozen=True)
class Settings:
    """kmsbridge's own settings (AWS's are in ``AwsSettings``), validated once."""

    table: str = DEFAULT_TABLE
    max_age: float = DEFAULT_MAX_AGE_SECONDS
    playback_bucket: str | None = None
    allowed_orgs: frozenset[str] | None = None
    rotation_lead: timedelta = timedelta(hours=DEFAULT_ROTATION_LEAD_HOURS)
    export_bucket: str | None = None
    require_sealed: bool = False
    ca_file: str | None = None
    ca_fingerprint: str | None = None
    customer_ca_dir: str | None = None
    ca_key_arn: str | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)
    # The Genesys Cloud LKM endpoint (integrations/lkm):
    # KMSBRIDGE_LKM_NONCE_TABLE: DynamoDB table of Hawk nonces shared by every container
    # (partition key ``nonce`` S, TTL on ``expires_at``); unset = in memory (one process).
    lkm_nonce_table: str | None = None
    # KMSBRIDGE_LKM_TIMESTAMP_SKEW_SECONDS: the Hawk timestamp window (1-600, default 60).
    lkm_skew: float = DEFAULT_LKM_SKEW_SECONDS
    # KMSBRIDGE_LKM_PUBLIC_HOST: the host clients sign behind a custom domain (port 443).
    lkm_public_host: str | None = None
    # KMSBRIDGE_LKM_REGISTER_ORG: opens the unauthenticated POST /auth for this org.
    lkm_register_org: str | None = None
    # KMSBRIDGE_LKM_ALLOW_KEYPAIR_CREATE=1: opens POST /keypair (needs kms:GenerateDataKey).
    lkm_allow_keypair_create: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``env`` (default: the process environment); ``overrides`` win."""
        env = os.environ if env is None else env
        settings = cls(
            table=env.get("KMSBRIDGE_TABLE") or DEFAULT_TABLE,
            max_age=_max_age(env.get("KMSBRIDGE_MAX_AGE_SECONDS")),
            playback_bucket=env.get("KMSBRIDGE_PLAYBACK_BUCKET") or None,
            allowed_orgs=_allowed_orgs(env.get("KMSBRIDGE_ALLOWED_ORGS")),
            rotation_lead=_rotation_lead(env.get("KMSBRIDGE_ROTATION_LEAD_HOURS")),
            export_bucket=env.get("KMSBRIDGE_EXPORT_BUCKET") or None,
            require_sealed=_flag(env, "KMSBRIDGE_REQUIRE_SEALED"),
            ca_file=env.get("KMSBRIDGE_CA_FILE") or None,
            ca_fingerprint=env.get("KMSBRIDGE_CA_FINGERPRINT") or None,
            customer_ca_dir=env.get("KMSBRIDGE_CUSTOMER_CA_DIR") or None,
            ca_key_arn=env.get("KMSBRIDGE_CA_KEY_ARN") or None,
            lkm_nonce_table=env.get("KMSBRIDGE_LKM_NONCE_TABLE") or None,
            lkm_skew=_lkm_skew(env.get("KMSBRIDGE_LKM_TIMESTAMP_SKEW_SECONDS")),
            lkm_public_host=(env.get("KMSBRIDGE_LKM_PUBLIC_HOST") or "").strip().lower() or None,
            lkm_register_org=_lkm_register_org(env.get("KMSBRIDGE_LKM_REGISTER_ORG")),
            lkm_allow_keypair_create=_flag(env, "KMSBRIDGE_LKM_ALLOW_KEYPAIR_CREATE"),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given) if given else settings  # type: ignore[arg-type]

    @classmethod
    def for_cli(
        cls,
        flags: Mapping[str, str | None],
        env: Mapping[str, str] | None = None,
        config_path: str | None = None,
    ) -> Settings:
        """The command line's settings: each from its flag, else the environment, else the file.

        ``flags`` are the global options by setting name (``table``, ``region``, ``profile``,
        ``endpoint_url``, ``ca_file``, ``role_arn``; None when not given). The file is
        ``config_path``, else ``KMSBRIDGE_CONFIG``, else ``config.toml`` in
        ``$XDG_CONFIG_HOME/kmsbridge`` (default ``~/.config/kmsbridge``); only a file named
        explicitly must exist.
        """
        env = os.environ if env is None else env
        file = read_config(config_path or env.get("KMSBRIDGE_CONFIG"), env)

        def pick(name: str, *variables: str) -> str | None:
            from_env = next((env[v] for v in variables if env.get(v)), None)
            return flags.get(name) or from_env or file.get(name)

        aws = AwsSettings(
            region=pick("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
            profile=pick("profile", "AWS_PROFILE"),
            endpoint_url=pick("endpoint_url", "AWS_ENDPOINT_URL"),
            role_arn=pick("role_arn", "KMSBRIDGE_ROLE_ARN"),
        )
        return cls.from_env(
            env,
            table=pick("table", "KMSBRIDGE_TABLE"),
            ca_file=pick("ca_file", "KMSBRIDGE_CA_FILE"),
            aws=aws,
        )


# The config file's keys: the settings an operator keeps per machine or per account.
CONFIG_KEYS = ("table", "region", "profile", "endpoint_url", "ca_file", "role_arn")


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "kmsbridge" / "config.toml"


def read_config(path: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """The config file's settings (TOML, keys from ``CONFIG_KEYS``, string values)."""
    where = Path(path) if path else default_config_path(env)
    try:
        with open(where, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        if path:
            raise ConfigurationError(f"the config file {where} does not exist") from None
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigurationError(f"the config file {where} is not valid TOML") from None
    except OSError as exc:
        raise ConfigurationError(
            f"the config file {where} cannot be read: {exc.strerror}"
        ) from None
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigurationError(
            f"the config file {where} has unknown settings ({', '.join(unknown)}); "
            f"known: {', '.join(CONFIG_KEYS)}"
        )
    if not all(isinstance(v, str) and v for v in data.values()):
        raise ConfigurationError(f"every setting in the config file {where} must be a string")
    return dict(data)


class Services:
    """Clients, key table, KEK wrapper and decryptor, each made on first use and reused.

    Nothing is read or built until first used, so a handler module imports cleanly and a
    bad setting surfaces as an error of the event that needed it. Tests pass prebuilt
    ``clients`` or a ``decryptor`` (whose table and KEK wrapper are then used).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clients: AwsClients | None = None,
        decryptor: Decryptor | None = None,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._decryptor = decryptor

    @cached_property
    def settings(self) -> Settings:
        return self._settings or Settings.from_env()

    @property
    def table(self) -> str:
        return self.settings.table

    @cached_property
    def clients(self) -> AwsClients:
        return self._clients or AwsClients(self.settings.aws)

    @cached_property
    def store(self) -> KeyStore:
        if self._decryptor is not None:
            return self._decryptor.store
        return KeyStore(self.clients.client("dynamodb"), self.settings.table)

    @cached_property
    def kms(self) -> KekWrapper:
        return self._decryptor.kms if self._decryptor is not None else KekWrapper(self.clients)

    def trust_for(self, org: str, **overrides: str | None) -> TrustAnchors:
        """The CAs this encryptor pins for ``org``: from its settings (or ``overrides``:
        ``ca_file``, ``ca_fingerprint``, ``customer_ca_file``), never from the key table.
        Nothing pinned is an error: nothing is encrypted without a certificate check."""
        s = self.settings
        pins = {"ca_file": s.ca_file, "ca_fingerprint": s.ca_fingerprint}
        pins |= {k: v for k, v in overrides.items() if v is not None}
        return load_trust(validate_org(org), customer_ca_dir=s.customer_ca_dir, **pins)

    @cached_property
    def certifier(self) -> KekCertifier:
        """The platform CA (from the key table) and its KMS signer, for new KEKs. With
        ``KMSBRIDGE_CA_KEY_ARN`` (the platform module sets it), a CA item naming another
        key is refused: the table does not choose which key signs."""
        ca = get_ca(self.store)
        expected = self.settings.ca_key_arn
        if expected is not None and ca.kms_key != expected:
            raise ConfigurationError(
                f"the key table's platform CA uses KMS key {ca.kms_key}, not "
                f"KMSBRIDGE_CA_KEY_ARN ({expected}); nothing was signed"
            )
        return KekCertifier(
            ca, KmsSigner(self.clients.client("kms", region_of(ca.kms_key)), ca.kms_key)
        )

    @cached_property
    def decryptor(self) -> Decryptor:
        if self._decryptor is not None:
            return self._decryptor
        return Decryptor(self.store, self.kms, max_age=self.settings.max_age)


def _max_age(raw: str | None) -> float:
    """``KMSBRIDGE_MAX_AGE_SECONDS`` (default 60; 0 disables caching; at most one hour)."""
    if raw is None or not raw.strip():
        return DEFAULT_MAX_AGE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError("KMSBRIDGE_MAX_AGE_SECONDS must be a number of seconds") from None
    if not 0 <= value <= MAX_AGE_LIMIT_SECONDS:
        raise ConfigurationError(
            f"KMSBRIDGE_MAX_AGE_SECONDS must be between 0 and {MAX_AGE_LIMIT_SECONDS}"
        )
    return value


def _allowed_orgs(raw: str | None) -> frozenset[str] | None:
    """``KMSBRIDGE_ALLOWED_ORGS`` (comma-separated org ids) when set, else None (every org)."""
    names = [o.strip() for o in (raw or "").split(",") if o.strip()]
    try:
        return frozenset(validate_org(o) for o in names) or None
    except InvalidRequest:
        raise ConfigurationError("KMSBRIDGE_ALLOWED_ORGS lists an invalid org id") from None


def _rotation_lead(raw: str | None) -> timedelta:
    """``KMSBRIDGE_ROTATION_LEAD_HOURS`` (default 24, 0-720): rotate this long before expiry."""
    if raw is None or not raw.strip():
        return timedelta(hours=DEFAULT_ROTATION_LEAD_HOURS)
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= MAX_ROTATION_LEAD_HOURS:
        raise ConfigurationError(
            f"KMSBRIDGE_ROTATION_LEAD_HOURS must be 0 to {MAX_ROTATION_LEAD_HOURS} hours"
        )
    return timedelta(hours=hours)


def _lkm_skew(raw: str | None) -> float:
    """``KMSBRIDGE_LKM_TIMESTAMP_SKEW_SECONDS`` (default 60, 1-600)."""
    if raw is None or not raw.strip():
        return DEFAULT_LKM_SKEW_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= MAX_LKM_SKEW_SECONDS:
        raise ConfigurationError(
            f"KMSBRIDGE_LKM_TIMESTAMP_SKEW_SECONDS must be 1 to {MAX_LKM_SKEW_SECONDS:.0f} seconds"
        )
    return value


def _lkm_register_org(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return validate_org(raw.strip())
    except InvalidRequest:
        raise ConfigurationError("KMSBRIDGE_LKM_REGISTER_ORG is not a valid org id") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: ``1``/``true`` or ``0``/``false`` (any case); unset or empty: no."""
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ConfigurationError(f"{name} must be 1 or 0")
