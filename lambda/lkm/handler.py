"""The Genesys Cloud LKM endpoint behind a Lambda function URL: ``handler.handler``.

The contract lives in ``kmsbridge.integrations.lkm``. Environment: KMSBRIDGE_TABLE,
KMSBRIDGE_MAX_AGE_SECONDS, KMSBRIDGE_LKM_NONCE_TABLE, KMSBRIDGE_LKM_TIMESTAMP_SKEW_SECONDS,
KMSBRIDGE_LKM_PUBLIC_HOST, KMSBRIDGE_LKM_REGISTER_ORG, KMSBRIDGE_LKM_ALLOW_KEYPAIR_CREATE
(``kmsbridge.services.Settings``). Read, and the clients built, on the first event.
"""

from kmsbridge.integrations.aws_lambda.telemetry import configure_logging
from kmsbridge.integrations.lkm.app import build_api
from kmsbridge.integrations.lkm.frontends import LkmHandler
from kmsbridge.services import Services

configure_logging()
handler = LkmHandler(lambda: build_api(Services()))
