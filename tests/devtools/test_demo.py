"""``kmsbridge demo`` end to end, the story's own checks, and the synthetic call it encrypts."""

from __future__ import annotations

import array
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from kmsbridge.devtools import demo
from kmsbridge.devtools.speech import SAMPLE_RATE, speech_like_wav
from kmsbridge.errors import InternalError
from kmsbridge.recordings.codec import RecordingInfo

HANDLER = Path(__file__).resolve().parents[2] / "lambda" / "decryptor" / "handler.py"


def test_kmsbridge_demo_tells_the_whole_story_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kmsbridge.cli.main",
            "--output",
            "json",
            "demo",
            "--max-age",
            "1",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    steps = {s["step"]: s["result"] for s in json.loads(done.stdout)["steps"]}
    assert steps["encrypt call-1"] == "ok, certificate checked, 0 KMS calls"
    assert steps["look-alike bundle"] == "refused: INTEGRITY"
    assert steps["platform CA"].startswith("created, ")
    assert steps["play after 1 s"] == "ACCESS_REVOKED"
    assert steps["play call-1 after enabling the key"] == "ok"
    assert steps["play call-1 (retired KEK)"] == steps["play call-2 (new KEK)"] == "ok"
    story = done.stderr  # with --output json the story goes to stderr
    audit = [
        json.loads(line.split("audit: ", 1)[1])
        for line in story.splitlines()
        if line.lstrip().startswith("audit: ")
    ]
    assert [a["outcome"] for a in audit].count("ACCESS_REVOKED") == 1
    assert {a["org"] for a in audit} == {"acme"} and all("data_key" not in a for a in audit)
    assert "Summary" in story and "Traceback" not in story
    if HANDLER.is_file():  # from a source tree, playback goes through the Lambda handler
        assert "sealed to a one-time X25519 key" in story
        assert "metric: Requests=1" in story and '"request_id": "demo-1"' in story
    else:
        assert "is not beside this installation" in story
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [
        "acme-public-keys.pem",
        "call-1.wav",
        "call-1.wav.enc",
        "call-2.wav",
        "call-2.wav.enc",
        "look-alike-bundle.pem",
        "platform-ca.pem",
    ]
    assert (tmp_path / "call-1.wav").read_bytes() == speech_like_wav(4.0)


class LeakyPlayer(demo.DecryptorPlayer):
    """A player whose cache never expires: what the demo must catch, not paper over."""

    description = "a decryptor that never forgets"

    def __init__(self, world: demo.DemoWorld, max_age: float) -> None:
        super().__init__(world, 3600.0)


def test_the_story_checks_its_outcomes(tmp_path: Path) -> None:
    out = io.StringIO()
    with pytest.raises(InternalError, match="still worked after the customer disabled"):
        demo.run(out, player_factory=LeakyPlayer, max_age=0.1)
    assert "ACCESS_REVOKED" not in out.getvalue()


def test_a_seam_that_plays_the_wrong_bytes_is_caught() -> None:
    class Garbling(demo.DecryptorPlayer):
        def play(self, org: str, source: Path, target: Path) -> RecordingInfo:
            info = super().play(org, source, target)
            target.write_bytes(target.read_bytes()[:-1] + b"\0")
            return info

    with pytest.raises(InternalError, match="differs"):
        demo.run(io.StringIO(), player_factory=Garbling, max_age=0.1)


def test_max_age_is_bounded() -> None:
    with pytest.raises(demo.InvalidRequest):
        demo.run(io.StringIO(), max_age=31)


def _pcm(data: bytes) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(io.BytesIO(data)) as w:
        params = w.getparams()
        samples = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return params, samples


def test_the_call_is_a_16_bit_mono_wav_that_sounds_voiced() -> None:
    data = speech_like_wav(3.0)
    params, samples = _pcm(data)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SAMPLE_RATE)
    assert params.nframes == 3 * SAMPLE_RATE and data == speech_like_wav(3.0)
    assert 20_000 < max(abs(s) for s in samples) <= 32767
    # Syllables and pauses: some 20 ms windows are silent, most are not.
    window = SAMPLE_RATE // 50
    energy = [
        sum(abs(s) for s in samples[i : i + window]) / window
        for i in range(0, len(samples) - window, window)
    ]
    silent = sum(e < 50 for e in energy) / len(energy)
    assert 0.05 < silent < 0.4
    # Voiced: the loudest window repeats with a pitch period of 100-160 Hz.
    start = max(range(len(energy)), key=energy.__getitem__) * window
    frame = [float(s) for s in samples[start : start + 2 * window]]
    lags = range(SAMPLE_RATE // 160, SAMPLE_RATE // 100 + 1)

    def correlation(lag: int) -> float:
        return sum(frame[i] * frame[i + lag] for i in range(len(frame) - lag))

    best = max(lags, key=correlation)
    assert correlation(best) > 0.5 * correlation(0)


def test_bad_durations_are_refused() -> None:
    for seconds in (0, -1, 601):
        with pytest.raises(ValueError):
            speech_like_wav(seconds)
