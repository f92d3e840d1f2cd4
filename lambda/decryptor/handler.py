"""The decryptor Lambda: ``handler.handler``.

The contract lives in ``kmsbridge.integrations.aws_lambda.decryptor_api``; what init does
(and SnapStart's before-snapshot and after-restore hooks) in ``...aws_lambda.snapstart``.

Environment: KMSBRIDGE_TABLE, KMSBRIDGE_MAX_AGE_SECONDS, KMSBRIDGE_PLAYBACK_BUCKET,
KMSBRIDGE_ALLOWED_ORGS (comma-separated, optional), KMSBRIDGE_REQUIRE_SEALED (1: unwrap
answers only with sealed keys; on in the Terraform platform module). They are read, and
the AWS clients, key table and decryptor built, once per container at init (after each
restore with SnapStart); warm events reuse them (and the decryptor's bounded KEK cache).
"""

from kmsbridge.integrations.aws_lambda import snapstart
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaHandler
from kmsbridge.integrations.aws_lambda.telemetry import configure_logging

configure_logging()
_models = snapstart.Models()
handler = LambdaHandler(_models.build)
snapstart.init(handler, _models)
