"""The demo's story, told with real calls on an embedded AWS (moto's server on 127.0.0.1).

A customer creates a KMS key; the platform creates its CA (a KMS signing key) and adds
their org (first KEK, wrapped under that key, certified by the CA); a call is recorded and
encrypted with the public key alone, once its certificate checked out against the pinned
CA (a look-alike bundle from another CA is refused); playback unwraps the KEK
just in time; the customer disables their key and playback stops once the cache age has
passed; they enable it and playback resumes; the KEK is rotated and old and new recordings
both play. Every step is a real call; the story checks its own outcomes and raises
``InternalError`` if any differs from what the design promises.

Two seams keep the story independent of where playback and rotation live: a ``Player``
(``DecryptorPlayer`` plays through the library's ``Decryptor``; the CLI may supply one that
goes through the Lambda handler) and a ``Rotate`` callable (``rotate_active_kek``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from cryptography import x509

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.clock import utcnow
from kmsbridge.crypto.certificates import fingerprint, pem_chain
from kmsbridge.crypto.trust import TrustAnchors, load_trust
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.devtools.embedded import embedded_aws, environment
from kmsbridge.devtools.forgery import look_alike_bundle
from kmsbridge.devtools.speech import speech_like_wav
from kmsbridge.errors import AccessRevoked, IntegrityError, InternalError, InvalidRequest
from kmsbridge.keys.bundle import read_bundle, write_bundle
from kmsbridge.keys.ca import KmsSigner, create_ca
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle import rotation as lifecycle
from kmsbridge.lifecycle.certification import KekCertifier
from kmsbridge.lifecycle.publishing import bundle_for
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import RecordingInfo, decrypt_file, encrypt_file, read_header

ORG = "acme"
TABLE_PREFIX = "kmsbridge-demo-"
REGION = "us-east-1"
DEFAULT_MAX_AGE_SECONDS = 2.0
MAX_MAX_AGE_SECONDS = 30.0  # the demo waits this long in real time


@dataclass
class DemoWorld:
    """The embedded AWS and the platform's view of it, shared by every step."""

    endpoint: str
    clients: AwsClients
    kms: KekWrapper
    store: KeyStore
    workdir: Path
    narrator: Narrator
    key_arn: str = ""
    org: str = ORG
    certifier: KekCertifier | None = None

    @property
    def ca_file(self) -> Path:
        """The encryptor's pin: the platform CA certificate it was given out of band."""
        return self.workdir / "platform-ca.pem"

    @property
    def kms_client(self) -> Any:
        return self.clients.client("kms")

    @property
    def key_id(self) -> str:
        return self.key_arn.rsplit("/", 1)[1]


class Player(Protocol):
    """Plays (decrypts) one recording to a file; raises the library's errors."""

    description: str

    def play(self, org: str, source: Path, target: Path) -> RecordingInfo: ...


PlayerFactory = Callable[[DemoWorld, float], Player]
Rotate = Callable[[DemoWorld], str]  # returns the new active KEK id


class DecryptorPlayer:
    """Playback through the library's ``Decryptor`` in this process."""

    description = "the library's Decryptor, in process"

    def __init__(self, world: DemoWorld, max_age: float) -> None:
        self.decryptor = Decryptor(world.store, world.kms, max_age=max_age)

    def play(self, org: str, source: Path, target: Path) -> RecordingInfo:
        return decrypt_file(source, target, org=org, data_keys=self.decryptor)


def rotate_active_kek(world: DemoWorld) -> str:
    """The lifecycle's rotation: a new active KEK, the previous one retired (decrypt only)."""
    return lifecycle.rotate(world.store, world.kms, world.org, certifier=world.certifier).active_kek


@dataclass(frozen=True)
class Outcome:
    """One row of the closing summary."""

    step: str
    result: str


class Narrator:
    """Numbered steps, indented details, and the audit lines as the decryptor writes them."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.steps = 0

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, title: str) -> None:
        self.steps += 1
        self.say(f"\n{self.steps:2d}. {title}")

    def detail(self, text: str) -> None:
        self.say(f"    {text}")


def run(
    out: TextIO,
    *,
    player_factory: PlayerFactory = DecryptorPlayer,
    rotate: Rotate = rotate_active_kek,
    max_age: float = DEFAULT_MAX_AGE_SECONDS,
    keep: Path | None = None,
) -> list[Outcome]:
    """Start an embedded AWS, tell the story on it, stop it; the summary rows."""
    if not 0 <= max_age <= MAX_MAX_AGE_SECONDS:
        raise InvalidRequest(f"the demo's max age must be 0 to {MAX_MAX_AGE_SECONDS:g} seconds")
    narrator = Narrator(out)
    started = time.monotonic()
    with embedded_aws(REGION) as endpoint, _workdir(keep) as workdir, _audit_to(narrator):
        clients = AwsClients(AwsSettings(region=REGION, endpoint_url=endpoint))
        # moto's state is per process: a fresh table name lets a process run the demo twice.
        store = KeyStore(clients.client("dynamodb"), TABLE_PREFIX + os.urandom(3).hex())
        world = DemoWorld(endpoint, clients, KekWrapper(clients), store, workdir, narrator)
        narrator.say(f"kmsbridge demo: an embedded AWS (moto) at {endpoint}; real calls only.")
        with environment(KMSBRIDGE_TABLE=store.table, KMSBRIDGE_MAX_AGE_SECONDS=f"{max_age:g}"):
            outcomes = Story(world, narrator, player_factory, rotate, max_age).tell()
        if keep is not None:
            narrator.say(f"\nThe call, its recordings and bundles are in {workdir}.")
    _summary(narrator, outcomes, time.monotonic() - started)
    return outcomes


class Story:
    def __init__(
        self,
        world: DemoWorld,
        narrator: Narrator,
        player_factory: PlayerFactory,
        rotate: Rotate,
        max_age: float,
    ) -> None:
        self.w = world
        self.n = narrator
        self.player_factory = player_factory
        self.rotate = rotate
        self.max_age = max_age
        self.outcomes: list[Outcome] = []
        self.call = speech_like_wav(4.0)

    def tell(self) -> list[Outcome]:
        self.setup()
        player = self.player_factory(self.w, self.max_age)
        first = self.record("call-1")
        self.n.say(f"\nPlayback goes through {player.description}.")
        self.n.say(f"Its cache keeps an unwrapped KEK for at most {self.max_age:g} s.")
        self.play(player, first, "play call-1 (KMS unwraps the KEK)")
        # With no cache (--max-age 0) the second playback is a miss like the first.
        cached = "cached" if self.max_age > 0 else "no cache: KMS unwraps again"
        self.play(player, first, f"play call-1 again ({cached})")
        self.revoke(player, first)
        self.w.kms_client.enable_key(KeyId=self.w.key_id)
        self.n.step("The customer enables their key again")
        self.play(player, first, "play call-1 after enabling the key")
        self.rotate_and_replay(player, first)
        return self.outcomes

    # ------------------------------------------------------------ acts

    def setup(self) -> None:
        self.n.step("The customer creates a KMS key in their own account")
        created = self.w.kms_client.create_key(Description=f"{ORG}: call recordings")
        self.w.key_arn = created["KeyMetadata"]["Arn"]
        self.n.detail(self.w.key_arn)
        self._row("customer KMS key", "created")
        self.n.step(f"The platform creates the key table {self.w.store.table!r}, adds org {ORG!r}")
        self.w.store.create_table()
        self.create_ca()
        before = self.w.kms.kms_calls
        _, kek = create_org(
            self.w.store, self.w.kms, ORG, [self.w.key_arn], certifier=self.w.certifier
        )
        self.n.detail(f"first KEK (RSA-3072) {kek.kek_id[:16]}…, active")
        cert = x509.load_der_x509_certificate(kek.certificate or b"")
        self.n.detail(
            f"its certificate: {cert.subject.rfc4514_string()}, subject key id = the KEK id, "
            f"keyEncipherment only, valid until {cert.not_valid_after_utc:%Y-%m-%d}"
        )
        self.n.detail(
            f"its private key is stored only wrapped under the customer's key "
            f"({len(kek.wrapped_private_key or b'')} bytes, an ESDK message); "
            f"{self.w.kms.kms_calls - before} KMS calls: wrap, then unwrap once to verify"
        )
        self._row("org + first KEK", f"KEK {kek.kek_id}")

    def create_ca(self) -> None:
        self.n.step("The platform creates its CA: a KMS signing key (ECC_NIST_P384)")
        arn = self.w.kms_client.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")[
            "KeyMetadata"
        ]["Arn"]
        signer = KmsSigner(self.w.kms_client, arn)
        ca = create_ca(self.w.store, signer, now=utcnow())
        self.w.certifier = KekCertifier(ca, signer)
        self.w.ca_file.write_bytes(pem_chain([ca.certificate]))
        self.n.detail("its private key never leaves KMS: every certificate is a kms:Sign call")
        self.n.detail(f"SHA-256 fingerprint {fingerprint(ca.certificate)}")
        self.n.detail(f"encryptors pin it: {self.w.ca_file.name} (kmsbridge ca show)")
        self._row("platform CA", f"created, SHA-256 {fingerprint(ca.certificate)}")

    def record(self, recording_id: str) -> Path:
        """Export the certified public key, then encrypt a call with AWS switched off."""
        bundle_path = self.w.workdir / f"{ORG}-public-keys.pem"
        bundle = bundle_for(self.w.store, ORG)
        write_bundle(bundle.pem, bundle_path)
        wav = self.w.workdir / f"{recording_id}.wav"
        wav.write_bytes(self.call)
        target = self.w.workdir / f"{recording_id}.wav.enc"
        self.n.step(f"A call is recorded ({len(self.call):,} bytes of WAV) and encrypted")
        with _aws_switched_off():
            trust = load_trust(ORG, ca_file=str(self.w.ca_file))
            public = read_bundle(bundle_path, ORG, trust=trust)
            if recording_id == "call-1":
                self.refuse_look_alike(trust)
            encrypt_file(
                wav,
                target,
                public_key=public,
                org=ORG,
                recording_id=recording_id,
                metadata={"kmsbridge:media": "audio/wav"},
            )
        with target.open("rb") as f:
            header = read_header(f)
        self.n.detail(
            f"with the public-key bundle {bundle_path.name} only (KEK {bundle.kek_id[:16]}…),"
        )
        self.n.detail(f"its certificate checked first against the pinned {self.w.ca_file.name}")
        self.n.detail("(chain, signature, dates, org, KEK id, key usage);")
        self.n.detail("AWS was switched off for this step (no credentials, no endpoint),")
        self.n.detail("so it made no KMS call and needed no secret")
        self.n.detail(
            f"{target.name}: {target.stat().st_size:,} bytes, an ESDK v2 message; context "
            f"{dict(header.encryption_context)}"
        )
        self._row(f"encrypt {recording_id}", "ok, certificate checked, 0 KMS calls")
        return target

    def refuse_look_alike(self, trust: TrustAnchors) -> None:
        """A bundle for an attacker's key, from a CA with the platform CA's very name."""
        forged = self.w.workdir / "look-alike-bundle.pem"
        forged.write_bytes(look_alike_bundle(ORG))
        try:
            read_bundle(forged, ORG, trust=trust)
        except IntegrityError as exc:
            self.n.detail(f"a look-alike bundle (an attacker's key and CA) is refused: {exc.code}")
            self._row("look-alike bundle", f"refused: {exc.code}")
            return
        raise InternalError("a bundle from an unpinned CA was accepted")

    def play(self, player: Player, recording: Path, title: str) -> RecordingInfo:
        self.n.step(title[0].upper() + title[1:])
        info = self._play(player, recording)
        self._row(title, "ok")
        return info

    def revoke(self, player: Player, recording: Path) -> None:
        self.n.step("The customer disables their key")
        self.w.kms_client.disable_key(KeyId=self.w.key_id)
        try:
            self._play(player, recording)
            within = f"still plays from the cache (at most {self.max_age:g} s)"
            self.n.detail(f"{within}: the decryptor does not ask KMS again before then")
        except AccessRevoked as exc:
            within = "refused at once: ACCESS_REVOKED"
            self.n.detail(f"refused: {exc.code}: {exc.message}")
        self._row("play at once after disabling", within)
        self.n.detail(f"waiting {self.max_age:g} s, the decryptor's maximum cache age …")
        time.sleep(self.max_age + 0.2)
        self.n.step("Playback after the cache age has passed")
        try:
            self._play(player, recording)
        except AccessRevoked as exc:
            self.n.detail(f"refused: {exc.code}: {exc.message}")
            self._row(f"play after {self.max_age:g} s", "ACCESS_REVOKED")
            return
        raise InternalError("playback still worked after the customer disabled their key")

    def rotate_and_replay(self, player: Player, first: Path) -> None:
        self.n.step("The platform rotates the org's KEK")
        kek_id = self.rotate(self.w)
        states = {k.kek_id: k.state for k in self.w.store.list_keks(ORG)}
        for listed, state in sorted(states.items(), key=lambda item: item[1]):
            self.n.detail(f"KEK {listed[:16]}… {state}")
        if states.get(kek_id) != "active" or list(states.values()).count("active") != 1:
            raise InternalError("rotation did not leave exactly one active KEK, the new one")
        self._row("rotate KEK", f"new KEK {kek_id}")
        second = self.record("call-2")
        old = self.play(player, first, "play call-1 (retired KEK)")
        new = self.play(player, second, "play call-2 (new KEK)")
        if new.kek_id != kek_id or old.kek_id == kek_id:
            raise InternalError("the recordings do not name the KEKs they should")

    # ------------------------------------------------------------ helpers

    def _play(self, player: Player, recording: Path) -> RecordingInfo:
        target = recording.with_name(recording.name.removesuffix(".enc") + ".played")
        info = player.play(ORG, recording, target)
        if target.read_bytes() != self.call:
            raise InternalError("the played-back call differs from the recorded one")
        self.n.detail(f"played {info.recording_id}: {info.plaintext_bytes:,} bytes, identical")
        target.unlink()
        return info

    def _row(self, step: str, result: str) -> None:
        self.outcomes.append(Outcome(step, result))


def _summary(narrator: Narrator, outcomes: list[Outcome], seconds: float) -> None:
    width = max(len(o.step) for o in outcomes)
    narrator.say(f"\nSummary ({seconds:.1f} s)\n")
    narrator.say(f"  {'step'.ljust(width)}  result")
    narrator.say(f"  {'-' * width}  {'-' * 32}")
    for o in outcomes:
        narrator.say(f"  {o.step.ljust(width)}  {o.result}")


class _AuditLines(logging.Handler):
    def __init__(self, narrator: Narrator) -> None:
        super().__init__(logging.INFO)
        self.narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        self.narrator.detail(f"audit: {record.getMessage()}")


@contextmanager
def _audit_to(narrator: Narrator) -> Iterator[None]:
    """Show the decryptor's audit lines in the story (and only there) while it runs."""
    log = logging.getLogger("kmsbridge.audit")
    handler = _AuditLines(narrator)
    saved = (log.level, log.propagate)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _aws_switched_off() -> AbstractContextManager[None]:
    """No credentials and an endpoint that answers nothing: any AWS call would fail."""
    return environment(
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_SESSION_TOKEN=None,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # the discard port: nothing listens there
    )


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="kmsbridge-demo-") as name:
        yield Path(name)
