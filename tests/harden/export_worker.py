"""An SQS worker for export jobs, run as a subprocess by tests/harden/test_crashes.py.

``python -m tests.harden.export_worker '<json>'`` with endpoint, table, queue_url and job.
It receives a batch, runs ``process_export_batch``, deletes the message, until no message
is left, visible or in flight. With ``crash_after`` = N it SIGKILLs itself right after
its Nth S3 PutObject (an export object, a batch result or the manifest): a crash at an
injected point.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.export.job import process_export_batch
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore


def main(config: dict[str, Any]) -> None:
    clients = AwsClients(AwsSettings(region="us-east-1", endpoint_url=config["endpoint"]))
    decryptor = Decryptor(
        KeyStore(clients.client("dynamodb"), config["table"]), KekWrapper(clients)
    )
    s3, sqs = clients.client("s3"), clients.client("sqs")
    crash_after = config.get("crash_after")
    puts = [0]

    def count_put(**_: Any) -> None:
        puts[0] += 1
        if crash_after is not None and puts[0] >= crash_after:
            os.kill(os.getpid(), signal.SIGKILL)

    s3.meta.events.register("after-call.s3.PutObject", count_put)
    while True:  # as the SQS trigger would: until no message is left, visible or in flight
        got = sqs.receive_message(
            QueueUrl=config["queue_url"],
            MaxNumberOfMessages=1,
            VisibilityTimeout=1,
            WaitTimeSeconds=1,
        )
        for message in got.get("Messages", []):
            process_export_batch(json.loads(message["Body"]), clients=clients, decryptor=decryptor)
            sqs.delete_message(QueueUrl=config["queue_url"], ReceiptHandle=message["ReceiptHandle"])
        if not got.get("Messages") and queue_empty(sqs, config["queue_url"]):
            return


def queue_empty(sqs: Any, queue_url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return all(attributes[name] == "0" for name in names)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
