"""The decryptor Lambda: ``handler.handler``.

The contract lives in ``kmsbridge.integrations.aws_lambda.decryptor_api``.

Environment: KMSBRIDGE_TABLE, KMSBRIDGE_MAX_AGE_SECONDS, KMSBRIDGE_PLAYBACK_BUCKET,
KMSBRIDGE_ALLOWED_ORGS (comma-separated, optional), KMSBRIDGE_REQUIRE_SEALED (1: unwrap
answers only with sealed keys; on in the Terraform platform module). They are read, and
the AWS clients, key table and decryptor built, once per container on its first event;
warm events reuse them (and the decryptor's bounded KEK cache).
"""

from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaHandler
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging

configure_logging()
handler = LambdaHandler()
