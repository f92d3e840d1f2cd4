"""Lambda SnapStart for the decryptor: what init does, what a snapshot holds, what a restore redoes.

At init (``init``) the handler module has imported everything, and the service models of
KMS, DynamoDB and S3 are parsed into a botocore loader, the part of client construction
that costs (bench/bench_lambda_cold.py). What happens next depends on the init type
Lambda names in ``AWS_LAMBDA_INITIALIZATION_TYPE``:

- ``on-demand`` (or provisioned concurrency): the app is built at init, clients and
  credentials included, so the first event does only its own work.
- ``snap-start``: the models are parsed through clients that have no credential provider
  at all, so no credential is ever fetched before the snapshot; then, before the
  snapshot, those clients are dropped, and so is anything a request may have left (none
  runs during init, but the hook does not rely on that): cached KEKs and data keys, the
  app with its clients, the codec's pooled buffers. After each restore, Python's
  ``random`` is re-seeded (a snapshot would give every restored environment the same
  sequence) and the app is rebuilt on the kept loader: new session, credentials resolved
  now, empty caches.

Random numbers for keys never come from a snapshot: data keys and message ids come from
``os.urandom``, HPKE ephemeral keys from cryptography's OpenSSL, and init uses neither (a
test runs init with ``os.urandom`` and cryptography's key generation and sealing made to
fail). The system OpenSSL that urllib3's TLS contexts use is given fresh entropy after
each restore. The hooks are registered with ``snapshot-restore-py``,
which the Lambda Python runtime ships; elsewhere nothing is registered, and tests call
the hooks through its registry.
"""

from __future__ import annotations

import gc
import os
import random
import ssl
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialResolver

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp, LambdaHandler, build_app
from kmsbridge.recordings.codec import release_buffers

try:  # shipped by the Lambda Python runtime (and installed for the tests)
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # pragma: no cover - outside Lambda without the package: no hooks
    register_after_restore = register_before_snapshot = None

SNAP_START = "snap-start"
# The services the decryptor calls; their models are what client construction parses.
SERVICES = ("kms", "dynamodb", "s3")


def initialization_type(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")


class Models:
    """The one botocore loader of the container: parsed service models, no credentials."""

    def __init__(self) -> None:
        self.loader: Any = None  # the first session's, kept for every later one

    def session(self, *, credentials: bool = True) -> botocore.session.Session:
        """A new botocore session on the kept loader; without credentials if asked."""
        session = botocore.session.get_session()
        if self.loader is None:
            self.loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", self.loader)
        if not credentials:
            session.register_component("credential_provider", CredentialResolver([]))
        return session

    def warm(self, settings: AwsSettings) -> None:
        """Parse every model, endpoint rule set and retry table the decryptor's clients use."""
        session = boto3.Session(
            botocore_session=self.session(credentials=False), region_name=settings.region
        )
        for service in SERVICES:
            session.client(service, config=settings.client_config())  # type: ignore[call-overload]

    def build(self) -> LambdaApp:
        """The app, its clients on a new session over the parsed models."""
        return build_app(AwsClients.on(AwsSettings(), self.session()))


def init(handler: LambdaHandler, models: Models) -> None:
    """The decryptor's init: build now (on demand), or warm and register the hooks."""
    if initialization_type() != SNAP_START:
        handler.prepare()
        return
    models.warm(AwsSettings())
    if register_before_snapshot is not None and register_after_restore is not None:
        register_before_snapshot(before_snapshot, handler)
        register_after_restore(after_restore, handler)


def before_snapshot(handler: LambdaHandler) -> None:
    """Leave nothing secret or per-environment in the snapshot."""
    handler.forget()
    release_buffers()
    gc.collect()  # dropped clients and keys are unreachable now; free them before the image


def after_restore(handler: LambdaHandler) -> None:
    """Give this environment its own random state, then clients, credentials and caches."""
    random.seed()  # from os.urandom
    # The TLS contexts made at init seeded the system OpenSSL's generator (urllib3's, not
    # cryptography's): fresh entropy makes it reseed before any TLS handshake.
    ssl.RAND_add(os.urandom(48), 48.0)
    handler.prepare()


def registered(handler: LambdaHandler) -> list[tuple[Any, ...]]:
    """The hooks registered for ``handler`` (before-snapshot first), for tests and checks."""
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    return [
        entry
        for registry in (get_before_snapshot(), get_after_restore())
        for entry in registry
        if entry[1] == (handler,)
    ]
