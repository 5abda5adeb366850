"""Echo-cancellation groundwork: espeak-ng speech, scenes, metrics, classical cancellers."""
import json
import os

import numpy as np
import pytest

from conftest import run_cli
from cvstream.models.aec import evaluate as ev
from cvstream.models.aec.speech import (FLITE_VOICES, FS, espeak_available, flite_available,
                                       flite_voice, say, voice)
from cvstream.models.aec.synth import SCENARIOS, loudspeaker, scene

pytestmark = pytest.mark.skipif(not espeak_available() and os.environ.get("CI") != "true",
                                reason="espeak-ng not installed")


def test_espeak_speech_is_16k_and_voiced():
    x = say("hello world", voice(np.random.default_rng(0)))
    assert x.dtype == np.float32 and 0.3 * FS < len(x) < 3 * FS
    assert np.max(np.abs(x)) == pytest.approx(0.5, abs=1e-3)


def test_speech_synthesizers_run_in_a_session_of_their_own():
    """espeak-ng and flite run outside the graph's process group: a terminal's Ctrl-C
    (sent to its whole foreground group) drains the graph instead of killing the
    synthesizer under aec_scene_source, which then failed with CalledProcessError."""
    import sys
    from cvstream.models.aec.speech import _run
    out = _run([sys.executable, "-c", "import os; print(os.getsid(0), os.getpgid(0))"])
    sid, group = (int(v) for v in out.stdout.split())
    assert sid != os.getsid(0) and group != os.getpgid(0)


needs_flite = pytest.mark.skipif(not flite_available() and os.environ.get("CI") != "true",
                                 reason="flite not installed")


@needs_flite
def test_flite_speech_is_16k_and_voiced():
    """flite's voices at 16 kHz; the kal voice (8 kHz) keeps nothing above 4 kHz; a
    longer stretch speaks slower."""
    for name in FLITE_VOICES:
        x = say("hello world, sova ripa", {"engine": "flite", "voice": name, "stretch": 1.0})
        assert x.dtype == np.float32 and 0.3 * FS < len(x) < 3 * FS
        assert np.max(np.abs(x)) == pytest.approx(0.5, abs=1e-3)
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        high = spectrum[int(4200 * len(x) / FS):].sum() / spectrum.sum()
        assert (high < 1e-5) == (name == "kal"), (name, high)
    slow = say("hello world", {"engine": "flite", "voice": "slt", "stretch": 1.3})
    fast = say("hello world", {"engine": "flite", "voice": "slt", "stretch": 0.8})
    assert len(slow) > 1.4 * len(fast)
    rng = np.random.default_rng(5)
    pairs = [(a, flite_voice(rng, other=a)) for a in (flite_voice(rng) for _ in range(20))]
    assert all(a["voice"] != b["voice"] for a, b in pairs)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenes_have_the_parts_their_scenario_says(scenario):
    sig, info = scene(np.random.default_rng([1, SCENARIOS.index(scenario)]), 3.0, scenario)
    assert all(len(x) == 3 * FS for x in sig.values())
    assert np.max(np.abs(sig["mic"])) <= 1.0
    rms = {k: float(np.sqrt(np.mean(v ** 2))) for k, v in sig.items()}
    assert (rms["near"] == 0) == (scenario == "fst")
    assert (rms["ref"] == 0) == (scenario == "nst")
    assert 0 <= info.delay_ms <= 200 and 0.1 <= info.rt60_s <= 1.0


def test_loudspeaker_nonlinearity_is_bounded_and_odd_ish():
    y = loudspeaker(np.linspace(-1, 1, 101).astype(np.float32))
    assert np.all(np.abs(y) < 4) and y[50] == 0 and y[-1] > 0 > y[0]


def test_metrics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(FS).astype(np.float32)
    assert ev.erle_db(x, x / 10) == pytest.approx(20.0)
    assert ev.si_sdr_db(x, 3 * x) > 60
    shifted = np.concatenate([np.zeros(80, np.float32), x[:-80]])
    assert ev.delay_samples(x, shifted) == 80


def test_cancellers_on_far_end_single_talk():
    sig, _ = scene(np.random.default_rng(5), 4.0, "fst")
    for name, cancel in ev.CANCELLERS.items():
        out = cancel(sig["mic"], sig["ref"])
        assert len(out) == len(sig["mic"]) and np.all(np.isfinite(out)), name
    assert ev.erle_db(sig["mic"], ev.webrtc_aec3(sig["mic"], sig["ref"])) > 3


def test_synth_cli_writes_wav_triples(tmp_path):
    res = run_cli("models", "synth", "aec", "--out", str(tmp_path), "--count", "4",
                  "--seconds", "2", "--seed", "3")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["scenario"] for s in manifest["scenes"]] == list(SCENARIOS)
    import soundfile as sf
    mic, rate = sf.read(tmp_path / manifest["scenes"][2]["mic"], dtype="float32")
    assert rate == FS and len(mic) == 2 * FS


def test_erle_over_time_and_reconvergence_after_an_echo_path_change(tmp_path):
    """A made-up canceller that removes the echo (x 0.01, 40 dB) except for 1.5 s after the
    path change (x 0.3, ~10 dB): ERLE before ~40 dB, re-convergence ~1.5 s; the
    microphone gets 0 dB at once; the PNG is written."""
    seconds = 8.0
    change = int(seconds / 2 * FS)

    def lagging(mic, ref):
        gain = np.full(len(mic), 0.01, np.float32)
        gain[change:change + int(1.5 * FS)] = 0.3
        return mic * gain

    curves = ev.erle_curves({"lagging": lagging, "microphone": ev.passthrough}, scenes=2,
                            seconds=seconds)
    lag, mic = curves["lagging"], curves["microphone"]
    assert lag["before_db"] == pytest.approx(40.0, abs=0.1)
    assert lag["after_db"] == pytest.approx(40.0, abs=0.1)
    assert lag["reconverge_s"] == pytest.approx(1.5, abs=0.15)
    assert mic["before_db"] == pytest.approx(0.0, abs=1e-6) and mic["reconverge_s"] == 0.0
    # the same scenes with their path changed: the echo differs after the change
    same, _ = scene(np.random.default_rng([4242, 0]), seconds, "fst")
    moved, _ = scene(np.random.default_rng([4242, 0]), seconds, "fst", path_change=True)
    def corr(a, b):
        return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
    # (the echo is scaled to a peak over the whole scene: the same up to a factor before)
    assert corr(same["mic"][:change - FS], moved["mic"][:change - FS]) > 0.999
    assert corr(same["mic"][change + FS:], moved["mic"][change + FS:]) < 0.9
    path = ev.plot_erle(curves, str(tmp_path / "erle.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "re-convergence s" in ev.format_reconvergence(curves)


def test_training_variety_reaches_half_a_second_of_delay_and_leaves_evaluation_scenes():
    """Training scenes draw delays up to 500 ms (here one near 450 ms, found in the echo by
    the delay estimator), drift and other loudspeakers; without ``variety`` a seed gives
    the evaluation's scene."""
    from cvstream.blocks.kalman_echo import BulkDelayEstimator
    from cvstream.models.aec.synth import Variety, scene
    rng = np.random.default_rng([0, 3])
    v = Variety.draw(np.random.default_rng([0, 3]))
    sig, info = scene(rng, 4.0, "fst", variety=True)
    assert info.delay_ms == round(v.delay_ms, 1) and 400 < info.delay_ms < 500
    est = BulkDelayEstimator(16000, max_delay=0.5)
    est.push(sig["mic"] - sig["noise"], sig["ref"])
    assert 0 <= est.delay / 16 - info.delay_ms < 30        # the direct path comes after
    plain, _ = scene(np.random.default_rng([0, 3]), 4.0, "fst")
    again, _ = scene(np.random.default_rng([0, 3]), 4.0, "fst", variety=False)
    assert all(np.array_equal(plain[k], again[k]) for k in plain)
    assert not np.array_equal(plain["mic"], sig["mic"])


def test_training_delay_jumps_and_small_loudspeakers():
    """Delay jitter: after a jump of 10 ms the playback is the same signal 160 samples
    later (with the drift's interpolation in between); a small loudspeaker takes the bass
    away and lifts its resonance, at the same level."""
    import scipy.signal
    from cvstream.models.aec.synth import FS, drifted, small_speaker
    x = np.random.default_rng(1).standard_normal(FS).astype(np.float32)
    y = drifted(x, 0.0, ((0.5, 10.0),))
    assert np.array_equal(y[:FS // 2], x[:FS // 2])
    assert np.allclose(y[FS // 2:], x[FS // 2 - 160:FS - 160], atol=1e-6)
    z = small_speaker(x, 300.0, 1000.0, 10.0, 2.0)
    assert abs(np.mean(z ** 2) / np.mean(x ** 2) - 1) < 1e-3
    f, p = scipy.signal.welch(z, FS, nperseg=1024)
    db = 10 * np.log10(p)
    at = {hz: db[np.argmin(np.abs(f - hz))] for hz in (60, 1000, 4000)}
    assert at[1000] - at[4000] > 7 and at[4000] - at[60] > 15


@needs_flite
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_independent_generator_scenes(scenario):
    """The second generator gives the same parts per scenario, from its own rooms (direct
    path within 40 cm, RT60 0.15-0.8 s), delays (10-150 ms) and speech (two distinct flite
    voices); no echo comes before the delay."""
    from cvstream.models.aec.independent import room_response
    from cvstream.models.aec.independent import scene as independent_scene
    sig, info = independent_scene(np.random.default_rng([2, SCENARIOS.index(scenario)]),
                                  3.0, scenario)
    assert all(len(x) == 3 * FS and x.dtype == np.float32 for x in sig.values())
    assert np.max(np.abs(sig["mic"])) <= 1.0
    rms = {k: float(np.sqrt(np.mean(v ** 2))) for k, v in sig.items()}
    assert (rms["near"] == 0) == (scenario == "fst")
    assert (rms["ref"] == 0) == (scenario == "nst")
    assert 10 <= info.delay_ms <= 150 and 0.15 <= info.rt60_s <= 0.8
    assert info.far_talker["engine"] == info.near_talker["engine"] == "flite"
    assert info.far_talker["voice"] != info.near_talker["voice"]
    if scenario == "fst":
        echo = sig["mic"] - sig["noise"]
        lag = int(info.delay_ms * FS / 1000)
        assert np.max(np.abs(echo[:lag - 1])) < 1e-6 < np.max(np.abs(echo[lag:lag + FS]))
    h = room_response(np.random.default_rng(0), 0.5)
    direct = int(np.argmax(np.abs(h)))
    assert direct <= 0.4 / 343 * FS + 1 and np.abs(h).max() == 1.0


def test_eval_cli_generators_per_family():
    """aec takes --generator independent, spectrum does not (and aec not gnuradio): one
    line, exit 2."""
    for family, generator in (("aec", "gnuradio"), ("spectrum", "independent")):
        res = run_cli("models", "eval", family, "--generator", generator)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "--generator" in res.stderr


@needs_flite
def test_independent_scenes_through_the_evaluation():
    from cvstream.models.aec.independent import scene as independent_scene
    table = ev.evaluate({"microphone (no AEC)": ev.passthrough, "kalman": ev.kalman}, 1,
                        scenarios=("fst", "dt"), generator=independent_scene)
    assert table["fst"]["microphone (no AEC)"]["erle_db"] == pytest.approx(0.0, abs=1e-6)
    assert table["fst"]["kalman"]["erle_db"] > 3
    assert 1.0 <= table["dt"]["kalman"]["pesq_wb"] <= 4.6


@needs_flite
def test_eval_cli_on_the_independent_generator():
    res = run_cli("models", "eval", "aec", "--generator", "independent", "--scenes", "1",
                  timeout=300)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "scenes of the independent generator" in out and "ERLE 0-50 ms" not in out
    rows = [r for r in out.splitlines() if r.startswith(("fst |", "dt |"))]
    assert len(rows) == 2 * (len(ev.CANCELLERS) + 1)     # and the learned canceller
    assert any(r.startswith("dt | WebRTC AEC3 |") for r in rows)
