"""``kmsbridge lkm``: kmsbridge as a Genesys Cloud Local Key Manager.

``credential create ORG --id ID`` (a Hawk credential, its key shown once),
``keypair create|list ORG`` (LKM key pairs; ``create`` prints the body of Genesys
Cloud's ``POST /api/v2/recording/localkeys``), ``serve --port N`` (the endpoint on
127.0.0.1, HTTPS with ``--tls-cert``/``--tls-key``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kmsbridge.cli.base import Context, add_command, add_group

CONFIG_ID_PLACEHOLDER = "CONFIGURATION_ID"


def register(subparsers: Any) -> None:
    group = add_group(subparsers, "lkm", "Genesys Cloud Local Key Manager endpoint")
    credential = add_group(group, "credential", "Hawk credentials Genesys Cloud signs with")
    create = add_command(credential, "create", "make a Hawk credential for an org")
    create.add_argument("org")
    create.add_argument(
        "--id", required=True, dest="credential_id", help="6-128 of A-Z a-z 0-9 ._~-"
    )
    create.set_defaults(handler=create_credential)

    keypair = add_group(group, "keypair", "LKM key pairs (KEKs of the org)")
    kp_create = add_command(keypair, "create", "make a key pair; print the localkeys body")
    kp_create.add_argument("org")
    kp_create.add_argument(
        "--config-id",
        default=CONFIG_ID_PLACEHOLDER,
        help="the Genesys Cloud key configuration id (POST /api/v2/recording/keyconfigurations)",
    )
    kp_create.set_defaults(handler=create_keypair)
    kp_list = add_command(keypair, "list", "list the org's key pairs")
    kp_list.add_argument("org")
    kp_list.set_defaults(handler=list_keypairs)

    serve = add_command(group, "serve", "serve the endpoint on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    serve.add_argument("--tls-cert", help="PEM certificate (chain) for HTTPS")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.set_defaults(handler=serve_endpoint)


def _service(ctx: Context) -> Any:
    from kmsbridge.integrations.lkm.service import LkmService

    return LkmService(ctx.store, ctx.kms, ctx.decryptor)


def create_credential(ctx: Context) -> int:
    credential = _service(ctx).create_credential(ctx.args.org, ctx.args.credential_id)
    body = {"id": credential.id, "authKey": credential.key.decode(), "algorithm": "sha256"}
    # The key is shown once, to the operator who pastes it into Genesys Cloud.
    ctx.emit(body, json.dumps(body, indent=2))
    sys.stderr.write(
        "Give id and authKey to Genesys Cloud (apiId, apiKey of the key configuration); "
        "the key is not shown again.\n"
    )
    return 0


def create_keypair(ctx: Context) -> int:
    keypair = _service(ctx).create_keypair(ctx.args.org)
    body = {
        "configId": ctx.args.config_id,
        "publicKey": keypair.public_key,
        "keypairId": keypair.id,
    }
    ctx.emit(body, json.dumps(body, indent=2))
    sys.stderr.write(
        f"key pair {keypair.id} (KEK {keypair.kek_id[:12]}…): send this body to "
        "POST /api/v2/recording/localkeys\n"
    )
    return 0


def list_keypairs(ctx: Context) -> int:
    keypairs = _service(ctx).keypairs(ctx.args.org)
    rows = [{**k.to_json(), "kek": k.kek_id, "created_at": k.created_at} for k in keypairs]
    text = "\n".join(f"{k.id}  {k.created_at}  KEK {k.kek_id}" for k in keypairs)
    ctx.emit({"org": ctx.args.org, "keypairs": rows}, text or "no key pairs")
    return 0


def serve_endpoint(ctx: Context) -> int:
    from kmsbridge.errors import InvalidRequest
    from kmsbridge.integrations.lkm.app import build_api
    from kmsbridge.integrations.lkm.frontends import serve

    a = ctx.args
    if bool(a.tls_cert) != bool(a.tls_key):
        raise InvalidRequest("--tls-cert and --tls-key go together")
    api = build_api(ctx.services)
    scheme = "https" if a.tls_cert else "http"

    def ready(server: Any) -> None:
        sys.stderr.write(f"serving on {scheme}://127.0.0.1:{server.server_port}\n")
        sys.stderr.flush()

    serve(api, a.port, tls_cert=a.tls_cert, tls_key=a.tls_key, ready=ready)
    return 0
