"""How kmsbridge reaches AWS: one boto3 session and one client configuration for every call.

Settings come from arguments, else from the standard chain (``AWS_REGION``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, instance and Lambda roles). Retries are botocore's
own, in adaptive mode, with bounded connect and read timeouts so no call hangs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 4
    connect_timeout: float = 2.0
    read_timeout: float = 5.0

    def client_config(self) -> Config:
        return Config(
            retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            tcp_keepalive=True,
        )


@dataclass
class AwsClients:
    """Creates each client once per (service, region) and reuses it (warm Lambda containers)."""

    settings: AwsSettings = field(default_factory=AwsSettings)
    _session: boto3.Session | None = None
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session(
                profile_name=self.settings.profile, region_name=self.settings.region
            )
        return self._session

    @property
    def region(self) -> str:
        return self.session.region_name or DEFAULT_REGION

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=self.settings.client_config(),
                )
            return self._clients[key]
