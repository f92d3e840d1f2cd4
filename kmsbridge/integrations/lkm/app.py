"""The LKM endpoint's assembly from the shared ``Services`` (settings in services.py).

``KMSBRIDGE_TABLE`` and ``KMSBRIDGE_MAX_AGE_SECONDS`` act as for the decryptor (the cache
bound covers LKM KEKs and Hawk keys alike); ``KMSBRIDGE_LKM_*`` are the endpoint's own:
the nonce table, the timestamp window, the public host, the two routes closed by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kmsbridge.integrations.lkm.api import LkmApi, LkmConfig
from kmsbridge.integrations.lkm.hawk import HawkVerifier
from kmsbridge.integrations.lkm.nonces import DynamoNonceStore, MemoryNonceStore, NonceStore
from kmsbridge.integrations.lkm.service import LkmService
from kmsbridge.services import Services


def build_api(
    services: Services,
    *,
    clock: Callable[[], float] = time.time,
    cache_clock: Callable[[], float] = time.monotonic,
) -> LkmApi:
    """The API over the services' key table, KMS wrapper and decryptor, and a nonce store.

    ``clock``: wall time for Hawk timestamps; ``cache_clock``: the age of unwrapped Hawk
    keys (pass the decryptor's clock so one revocation bound covers both).
    """
    settings = services.settings
    service = LkmService(
        services.store,
        services.kms,
        services.decryptor,
        allowed_orgs=settings.allowed_orgs,
        now=cache_clock,
    )
    nonces: NonceStore
    if settings.lkm_nonce_table:
        client = services.clients.client("dynamodb")
        nonces = DynamoNonceStore(client, settings.lkm_nonce_table, settings.lkm_skew)
    else:
        nonces = MemoryNonceStore(settings.lkm_skew)
    verifier = HawkVerifier(service.credential, nonces, skew=settings.lkm_skew, now=clock)
    config = LkmConfig(
        register_org=settings.lkm_register_org,
        allow_keypair_create=settings.lkm_allow_keypair_create,
        public_host=settings.lkm_public_host,
    )
    return LkmApi(service, verifier, config)
