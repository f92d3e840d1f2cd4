"""SnapStart: init fetches no credential and draws no randomness; the before-snapshot hook
leaves no key, data key or credential reachable; the after-restore hook re-seeds and
rebuilds, and the decryptor serves again. The hooks run through snapshot-restore-py's own
registry, as the Lambda runtime runs them."""

from __future__ import annotations

import base64
import gc
import importlib.util
import io
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.credentials import CredentialResolver, Credentials
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from kmsbridge.integrations.aws_lambda import snapstart
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaHandler
from kmsbridge.recordings.codec import read_header
from tests.conftest import World

HANDLER = Path(__file__).resolve().parents[2] / "lambda" / "decryptor" / "handler.py"


def load_handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decryptor_handler_snapstart", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    monkeypatch.setenv("KMSBRIDGE_MAX_AGE_SECONDS", "600")
    return world


def unwrap_event(world: World, recording_id: str) -> dict[str, Any]:
    header = read_header(io.BytesIO(world.encrypt(b"call audio", recording_id))).raw
    return {"op": "unwrap", "org": world.org, "header": base64.b64encode(header).decode()}


def run_hooks(handler: LambdaHandler, which: str) -> None:
    names = {"before": snapstart.before_snapshot, "after": snapstart.after_restore}
    for func, args, kwargs in snapstart.registered(handler):
        if func is names[which]:
            func(*args, **kwargs)


def reachable(module: ModuleType) -> Iterator[object]:
    """Every object a module's globals reach, other modules' globals left out (the test's
    own world, fixtures and pytest are reachable through those and hold keys of their own)."""
    seen = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen.discard(id(vars(module)))
    todo: list[object] = [vars(module)]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType):
            continue
        seen.add(id(obj))
        yield obj
        todo.extend(gc.get_referents(obj))


def test_snap_start_init_fetches_no_credential_and_draws_no_randomness(
    lambda_env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")

    def refuse(*_: object, **__: object) -> Any:
        raise AssertionError("init must not do this")

    def no_chain(resolver: CredentialResolver) -> None:
        if resolver.providers:  # an empty chain fetches nothing
            raise AssertionError("init must not look for credentials")

    monkeypatch.setattr(CredentialResolver, "load_credentials", no_chain)
    monkeypatch.setattr(os, "urandom", refuse)
    monkeypatch.setattr(x25519.X25519PrivateKey, "generate", refuse)
    monkeypatch.setattr(rsa, "generate_private_key", refuse)
    module = load_handler_module()
    assert module.handler.app is None  # built after restore, with the credentials of then
    hooks = [func for func, _, _ in snapstart.registered(module.handler)]
    assert hooks == [snapstart.before_snapshot, snapstart.after_restore]


def test_on_demand_init_builds_the_app_and_registers_nothing(lambda_env: World) -> None:
    module = load_handler_module()
    assert module.handler.app is not None
    assert snapstart.registered(module.handler) == []


def test_before_snapshot_leaves_no_key_and_no_credential(
    lambda_env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    module = load_handler_module()
    handler = module.handler
    # Lambda runs no request before the snapshot; the hook must not rely on that.
    response = handler(unwrap_event(lambda_env, "before"), None)
    assert response["ok"] is True
    data_key = base64.b64decode(response["data_key"])
    app = handler.app
    assert len(app.decryptor.keks) == 1 and len(app.decryptor.data_keys) == 1
    run_hooks(handler, "before")
    assert handler.app is None
    assert len(app.decryptor.keks) == 0 and len(app.decryptor.data_keys) == 0
    kept = list(reachable(module))
    assert not [o for o in kept if isinstance(o, rsa.RSAPrivateKey)]
    assert not [o for o in kept if isinstance(o, Credentials)]
    assert not [o for o in kept if isinstance(o, bytes | bytearray) and data_key in o]


def test_after_restore_reseeds_rebuilds_and_serves(
    lambda_env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    module = load_handler_module()
    handler = module.handler
    run_hooks(handler, "before")
    random.seed(42)
    snapshot_state = random.getstate()  # what every restored environment would share
    run_hooks(handler, "after")
    assert random.getstate() != snapshot_state
    app = handler.app
    assert app is not None and len(app.decryptor.keks) == 0
    calls = app.kms.kms_calls
    assert handler(unwrap_event(lambda_env, "after"), None)["ok"] is True
    assert app.kms.kms_calls == calls + 1  # the KEK came from KMS, not from a snapshot


def test_a_failed_rebuild_is_reported_by_the_first_event(
    lambda_env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    module = load_handler_module()
    monkeypatch.setenv("KMSBRIDGE_MAX_AGE_SECONDS", "forever")
    run_hooks(module.handler, "after")  # must not raise into the runtime
    response = module.handler(unwrap_event(lambda_env, "x"), None)
    assert response["error"]["code"] == "INTERNAL"
    assert "KMSBRIDGE_MAX_AGE_SECONDS" in response["error"]["message"]
