"""The jobs Lambda's work, run locally: ``kmsbridge jobs work [--once]`` polls the queue.

What the Lambda's SQS event source mapping does, with the same job table and the same
partial-batch semantics: receive up to ten messages (long polling), hand them to
``process_batch`` as one SQS event, delete the ones that finished, and leave the failed
ones to come back after the queue's visibility timeout (and, with a redrive policy, to
its dead-letter queue). ``--once`` stops at the first receive that finds the queue empty,
so a failed message is not retried within the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.errors import InternalError
from kmsbridge.integrations.aws_lambda.jobs import SQS_BATCH_LIMIT, JobTable, process_batch

LONG_POLL_SECONDS = 10  # each receive waits this long for a message (SQS allows up to 20)


@dataclass
class WorkSummary:
    received: int = 0
    done: int = 0
    failed: int = 0


def work(
    sqs: Any,
    queue_url: str,
    jobs: JobTable,
    *,
    once: bool,
    wait_seconds: int = LONG_POLL_SECONDS,
    on_batch: Callable[[WorkSummary], None] | None = None,
) -> WorkSummary:
    """Process the queue's messages until it is empty (``once``) or forever."""
    summary = WorkSummary()
    while True:
        messages = _receive(sqs, queue_url, 1 if once else wait_seconds)
        if not messages:
            if once:
                return summary
            continue
        event = {
            "Records": [
                {"messageId": m["MessageId"], "body": m["Body"], "eventSourceARN": queue_url}
                for m in messages
            ]
        }
        failed = {f["itemIdentifier"] for f in process_batch(event, jobs)["batchItemFailures"]}
        finished = [m for m in messages if m["MessageId"] not in failed]
        _delete(sqs, queue_url, finished)
        summary.received += len(messages)
        summary.done += len(finished)
        summary.failed += len(failed)
        if on_batch is not None:
            on_batch(summary)


def _receive(sqs: Any, queue_url: str, wait_seconds: int) -> list[dict[str, Any]]:
    try:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=SQS_BATCH_LIMIT, WaitTimeSeconds=wait_seconds
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise InternalError(f"SQS refused to receive from {queue_url} ({code})") from None
    except BotoCoreError:
        raise InternalError(f"SQS is unreachable at {queue_url}") from None
    messages: list[dict[str, Any]] = answer.get("Messages", [])
    return messages


def _delete(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    if not messages:
        return
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    try:
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except (ClientError, BotoCoreError):
        # Not deleted: SQS delivers them again, and every job is idempotent.
        raise InternalError("SQS refused to delete finished messages; they will rerun") from None
