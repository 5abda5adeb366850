"""Speech from Debian's espeak-ng (many voices, languages, pitches and speeds; the training
and evaluation scenes) and from Debian's flite (five English voices built from recorded
speech, never heard in training: the independent generator's), resampled to 16 kHz.
Deterministic for a given random generator."""
from __future__ import annotations

import io
import shutil
import subprocess
import tempfile

import numpy as np
import scipy.signal
import soundfile as sf

from cvstream.errors import CvstreamError

FS = 16000
LANGUAGES = ("en", "en-us", "de", "fr", "es", "it", "pt", "nl", "sv", "pl")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4", "f5")
#: flite's voices: CMU ARCTIC statistical voices (slt female, awb and rms male) and the kal
#: diphone voice at 16 and 8 kHz (the last band-limited to 4 kHz, as a phone line is)
FLITE_VOICES = ("slt", "awb", "rms", "kal16", "kal")
SYLLABLES = ("ka", "lo", "mi", "ne", "ta", "ri", "so", "vu", "de", "pa", "go", "li", "ba",
             "fe", "zu", "ho", "wi", "ny", "ch", "ma")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def flite_available() -> bool:
    return shutil.which("flite") is not None


def random_text(rng: np.random.Generator, words: int) -> str:
    return " ".join("".join(rng.choice(SYLLABLES, rng.integers(1, 4))) for _ in range(words))


def voice(rng: np.random.Generator) -> dict:
    """A random talker: language, voice variant, pitch (0-99) and speed (words/min)."""
    return {"language": str(rng.choice(LANGUAGES)), "variant": str(rng.choice(VARIANTS)),
            "pitch": int(rng.integers(20, 80)), "speed": int(rng.integers(130, 200))}


def flite_voice(rng: np.random.Generator, other: dict | None = None) -> dict:
    """A random flite talker: voice (not ``other``'s) and duration stretch (0.8-1.3:
    faster to slower)."""
    voices = [v for v in FLITE_VOICES if other is None or v != other["voice"]]
    return {"engine": "flite", "voice": str(rng.choice(voices)),
            "stretch": round(float(rng.uniform(0.8, 1.3)), 2)}


def say(text: str, talker: dict) -> np.ndarray:
    """Synthesize ``text`` with ``talker`` (espeak-ng's unless its ``engine`` is flite);
    float32 at 16 kHz, peak-normalised to 0.5."""
    if talker.get("engine") == "flite":
        wav = _flite(text, talker)
    else:
        wav = _espeak(text, talker)
    x, rate = sf.read(io.BytesIO(wav), dtype="float32")
    x = scipy.signal.resample_poly(x, FS, rate).astype(np.float32)
    return 0.5 * x / (np.max(np.abs(x)) + 1e-9)


def _espeak(text: str, talker: dict) -> bytes:
    if not espeak_available():
        raise CvstreamError("espeak-ng is not installed (apt-get install espeak-ng)")
    cmd = ["espeak-ng", "--stdout", "-v", f"{talker['language']}+{talker['variant']}",
           "-p", str(talker["pitch"]), "-s", str(talker["speed"]), text]
    return _run(cmd).stdout


def _flite(text: str, talker: dict) -> bytes:
    if not flite_available():
        raise CvstreamError("flite is not installed (apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/say.wav"
        _run(["flite", "-voice", talker["voice"], "--setf",
              f"duration_stretch={talker['stretch']}", "-t", text, "-o", path])
        with open(path, "rb") as f:
            return f.read()


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    """A speech synthesizer's run, in a session of its own: a terminal's Ctrl-C (sent to
    its whole foreground group) reaches the graph, which drains, and not the synthesizer,
    whose death would fail the scene's source instead."""
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60,
                          start_new_session=True)


def talk(rng: np.random.Generator, talker: dict, seconds: float) -> np.ndarray:
    """Utterances of ``talker`` separated by pauses, cut or padded to ``seconds``."""
    n = int(seconds * FS)
    out = np.zeros(n, np.float32)
    pos = int(rng.uniform(0, 0.3) * FS)
    while pos < n:
        utt = say(random_text(rng, int(rng.integers(3, 8))), talker)
        out[pos:pos + len(utt)] = utt[:n - pos]
        pos += len(utt) + int(rng.uniform(0.1, 0.6) * FS)
    return out
