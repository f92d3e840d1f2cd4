"""Playback through the standard ESDK streaming API, data keys from the decryptor."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.exceptions import InvalidTag

from kmsbridge.errors import WrongOrg
from kmsbridge.integrations.esdk import esdk_decrypt_stream
from tests.conftest import World


def test_the_esdk_stream_plays_a_recording_with_a_decryptor_data_key(world: World) -> None:
    data = os.urandom(150_000)
    with esdk_decrypt_stream(
        io.BytesIO(world.encrypt(data)), org=world.org, data_keys=world.decryptor
    ) as stream:
        assert b"".join(stream) == data


def test_another_org_is_refused_before_the_esdk_runs(world: World) -> None:
    with pytest.raises(WrongOrg):
        esdk_decrypt_stream(io.BytesIO(world.encrypt(b"x")), org="other", data_keys=world.decryptor)


def test_a_tampered_frame_stops_the_esdk_stream(world: World) -> None:
    blob = bytearray(world.encrypt(os.urandom(100_000)))
    blob[-100] ^= 1
    source = io.BytesIO(bytes(blob))
    # the ESDK authenticates each frame itself
    with (
        pytest.raises(InvalidTag),
        esdk_decrypt_stream(source, org=world.org, data_keys=world.decryptor) as stream,
    ):
        b"".join(stream)
