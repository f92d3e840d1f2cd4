"""A few seconds of speech-like audio for the demo, made with the standard library only.

Not speech, but built the way speech is: a glottal pulse train (Rosenberg pulses, with a
falling, gently accented pitch) shaped by three formant resonators per vowel (Klatt's
second-order sections), syllables with a short noise onset and a smooth envelope, pauses
between words. The result is a 16-bit mono PCM WAV that sounds like someone talking
through a wall, which is what a call recording should sound like when it is not yours.
"""

from __future__ import annotations

import array
import io
import math
import sys
import wave

SAMPLE_RATE = 16_000

# Formant frequencies in Hz (F1, F2, F3) of five vowels, after Peterson and Barney (1952).
_VOWELS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
_BANDWIDTHS = (90.0, 110.0, 170.0)
# "hello, you are through to the recording line", as vowels; a space is a pause.
_PHRASE = "eo ua u u e eoi ai "
_SYLLABLE_SECONDS = 0.17
_ONSET_SECONDS = 0.035
_PAUSE_SECONDS = 0.11


def speech_like_wav(seconds: float = 4.0, *, rate: int = SAMPLE_RATE) -> bytes:
    """A ``seconds``-long 16-bit mono WAV of speech-like sound (deterministic)."""
    if not 0 < seconds <= 600 or not 8000 <= rate <= 48_000:
        raise ValueError("seconds must be in (0, 600] and rate in [8000, 48000]")
    samples = _speech(int(seconds * rate), rate)
    peak = max(max(abs(s) for s in samples), 1e-9)
    pcm = array.array("h", (round(26_000 * s / peak) for s in samples))
    if sys.byteorder == "big":
        pcm.byteswap()  # WAV is little-endian
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _speech(n: int, rate: int) -> list[float]:
    out: list[float] = []
    noise = _Noise()
    index = 0
    while len(out) < n:
        vowel = _PHRASE[index % len(_PHRASE)]
        index += 1
        if vowel == " ":
            out.extend([0.0] * int(_PAUSE_SECONDS * rate))
            continue
        progress = len(out) / n
        # Declination: pitch falls over the utterance; every third syllable is accented.
        f0 = 135.0 - 30.0 * progress + (12.0 if index % 3 == 0 else 0.0)
        out.extend(_onset(int(_ONSET_SECONDS * rate), rate, noise))
        out.extend(_vowel(int(_SYLLABLE_SECONDS * rate), rate, _VOWELS[vowel], f0))
    return out[:n]


def _vowel(n: int, rate: int, formants: tuple[float, ...], f0: float) -> list[float]:
    filters = [_Resonator(f, bw, rate) for f, bw in zip(formants, _BANDWIDTHS, strict=True)]
    out = []
    phase, previous = 0.0, 0.0
    for k in range(n):
        # Vibrato-free but not robotic: a slight rise then fall within the syllable.
        pitch = f0 * (1.0 + 0.04 * math.sin(math.pi * k / n))
        phase = (phase + pitch / rate) % 1.0
        glottal = _rosenberg(phase)
        sample = glottal - previous  # lip radiation: a first difference
        previous = glottal
        for f in filters:
            sample = f(sample)
        out.append(sample * math.sin(math.pi * k / n) ** 0.7)
    return out


def _onset(n: int, rate: int, noise: _Noise) -> list[float]:
    """A fricative-like burst: noise through one high resonance, quickly fading in and out."""
    hiss = _Resonator(3500.0, 900.0, rate)
    return [0.05 * hiss(noise()) * math.sin(math.pi * k / n) for k in range(n)]


def _rosenberg(phase: float, opening: float = 0.4, closing: float = 0.16) -> float:
    """Rosenberg's glottal pulse (1971): a smooth opening, a quicker closing, then closed."""
    if phase < opening:
        return 0.5 * (1.0 - math.cos(math.pi * phase / opening))
    if phase < opening + closing:
        return math.cos(0.5 * math.pi * (phase - opening) / closing)
    return 0.0


class _Resonator:
    """Klatt (1980) second-order digital resonator: y = a x + b y[-1] + c y[-2]."""

    def __init__(self, frequency: float, bandwidth: float, rate: int) -> None:
        self.c = -math.exp(-2.0 * math.pi * bandwidth / rate)
        self.b = (
            2.0 * math.exp(-math.pi * bandwidth / rate) * math.cos(2.0 * math.pi * frequency / rate)
        )
        self.a = 1.0 - self.b - self.c
        self.y1 = self.y2 = 0.0

    def __call__(self, x: float) -> float:
        y = self.a * x + self.b * self.y1 + self.c * self.y2
        self.y2, self.y1 = self.y1, y
        return y


class _Noise:
    """A small linear congruential generator: repeatable noise without ``random``."""

    def __init__(self, seed: int = 20261123) -> None:
        self.state = seed

    def __call__(self) -> float:
        self.state = (1103515245 * self.state + 12345) & 0x7FFFFFFF
        return self.state / 0x40000000 - 1.0
