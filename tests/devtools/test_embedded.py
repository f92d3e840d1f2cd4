"""The documented KMS key-state fixture: moto refuses keys that are not Enabled, as AWS does.

AWS KMS Developer Guide, "Key states of AWS KMS keys": Encrypt, Decrypt, GenerateDataKey
and ReEncrypt fail with DisabledException on a disabled key and KMSInvalidStateException
on a key pending deletion. moto 5.2.5 alone still performs them.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from kmsbridge.aws import AwsClients


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return str(info.value.response["Error"]["Code"])


def _exercise(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    context = {"kmsbridge:org": "acme"}
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"k" * 32, EncryptionContext=context)[
        "CiphertextBlob"
    ]

    kms.disable_key(KeyId=key_id)
    assert _code(kms.encrypt, KeyId=key_id, Plaintext=b"x") == "DisabledException"
    assert _code(kms.generate_data_key, KeyId=key_id, KeySpec="AES_256") == "DisabledException"
    assert _code(kms.decrypt, CiphertextBlob=blob, EncryptionContext=context) == "DisabledException"

    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"k" * 32

    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    for call, kwargs in (
        (kms.decrypt, {"CiphertextBlob": blob, "EncryptionContext": context}),
        (kms.encrypt, {"KeyId": key_id, "Plaintext": b"x"}),
        (kms.generate_data_key, {"KeyId": key_id, "KeySpec": "AES_256"}),
    ):
        assert _code(call, **kwargs) == "KMSInvalidStateException"

    kms.cancel_key_deletion(KeyId=key_id)  # leaves the key Disabled, as AWS does
    assert _code(kms.decrypt, CiphertextBlob=blob, EncryptionContext=context) == (
        "DisabledException"
    )
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"k" * 32


def test_key_states_are_enforced_in_process(aws: AwsClients) -> None:
    _exercise(aws.client("kms"))


def test_key_states_are_enforced_by_the_server(server_aws: AwsClients) -> None:
    _exercise(server_aws.client("kms"))


def test_enabled_keys_still_refuse_a_wrong_context(aws: AwsClients) -> None:
    kms = aws.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"k", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert _code(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"a": "c"}) == (
        "InvalidCiphertextException"
    )


def test_the_server_listens_only_on_loopback(moto_server: str) -> None:
    assert moto_server.startswith("http://127.0.0.1:")


def test_moto_conditional_writes_are_atomic_under_threads(aws: AwsClients) -> None:
    """Without the lock, several threads can all pass attribute_not_exists in moto."""
    import threading

    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName="atomic",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for round_ in range(20):
        wins: list[int] = []

        def put(i: int, key: str = f"item-{round_}") -> None:
            try:
                ddb.put_item(
                    TableName="atomic",
                    Item={"k": {"S": key}, "writer": {"N": str(i)}},
                    ConditionExpression="attribute_not_exists(k)",
                )
                wins.append(i)
            except ddb.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
