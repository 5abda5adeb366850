"""nlms_aec: the frequency-domain NLMS echo canceller."""
import numpy as np
import pytest
import scipy.signal

from conftest import run_echo_canceller
from cvstream.blocks.nlms import NlmsAec

FS = 16000


def echo_scene(seconds=5, delay=800, seed=0):
    rng = np.random.default_rng(seed)
    far = (rng.standard_normal(FS * seconds) * 0.3).astype(np.float32)
    h = np.zeros(delay + 1200)
    h[delay:] = rng.standard_normal(1200) * np.exp(-np.arange(1200) / 200)
    h /= 2 * np.linalg.norm(h)
    return far, scipy.signal.lfilter(h, 1, far).astype(np.float32)


def erle(d, e):
    return 10 * np.log10(np.sum(d ** 2) / np.sum(e ** 2))


def test_converges_on_far_end_single_talk():
    far, echo = echo_scene()
    out = NlmsAec(block=128, taps=2048, mu=0.5).process(echo, far)
    assert erle(echo[:FS // 2], out[:FS // 2]) < 15          # still learning
    assert erle(echo[3 * FS:], out[3 * FS:]) > 30            # converged


def test_near_end_passes_when_the_far_end_is_silent():
    rng = np.random.default_rng(1)
    near = (rng.standard_normal(FS) * 0.1).astype(np.float32)
    out = NlmsAec(block=128, taps=1024).process(near, np.zeros(FS, np.float32))
    np.testing.assert_allclose(out, near, atol=1e-6)


def test_taps_must_be_whole_blocks():
    with pytest.raises(Exception, match="not a multiple of block"):
        NlmsAec(block=128, taps=1000)


def test_nlms_graph_on_wav_files(graph_file, tmp_path):
    far, echo = echo_scene(seconds=4)
    res, out, rate = run_echo_canceller(
        graph_file, tmp_path, "{type: nlms_aec, block: 128, taps: 2048, mu: 0.5}", echo, far)
    assert res.returncode == 0, res.stderr
    assert rate == FS and len(out) == len(echo)
    assert erle(echo[2 * FS:], out[2 * FS:]) > 30


def _spectra(x):
    from cvstream.blocks.stft import STFT
    return STFT(size=320, hop=160).process(x)


def test_subband_echo_filter_follows_a_delayed_echo_path_and_its_change():
    """The learned canceller's linear stage: 50 ms bulk delay + a decaying room response,
    then a different path half-way; white far-end speech stand-in."""
    from cvstream.blocks.echo_filter import SubbandEchoFilter
    far, echo = echo_scene(seconds=8, delay=800)
    _, other = echo_scene(seconds=8, delay=1600, seed=1)
    rng = np.random.default_rng(2)
    far2 = far  # same far end, the room changes
    h2 = np.zeros(2800)
    h2[1600:] = rng.standard_normal(1200) * np.exp(-np.arange(1200) / 200)
    h2 /= 2 * np.linalg.norm(h2)
    echo2 = scipy.signal.lfilter(h2, 1, far2).astype(np.float32)
    half = 4 * FS
    mic = np.concatenate([echo[:half], echo2[half:]])
    M, R = _spectra(mic), _spectra(far)
    err, est = SubbandEchoFilter(161).process(M, R)
    frames = lambda a, b: slice(a * 100, b * 100)  # noqa: E731  (100 frames per second)

    def erle_f(s):
        return 10 * np.log10(np.sum(np.abs(M[s]) ** 2) / np.sum(np.abs(err[s]) ** 2))
    assert erle_f(frames(0, 1)) < 10          # still learning
    # converged (per-bin filters leave the STFT's cross-band terms: about 12 dB here)
    assert erle_f(frames(3, 4)) > 10
    assert erle_f(frames(3, 4)) > erle_f(frames(0, 1)) + 5
    assert erle_f(frames(7, 8)) > 10          # re-converged after the change
    np.testing.assert_allclose(M - err, est, atol=1e-5)


def test_subband_echo_filter_is_chunking_invariant_and_survives_silent_reference():
    from cvstream.blocks.echo_filter import SubbandEchoFilter
    far, echo = echo_scene(seconds=3)
    rng = np.random.default_rng(3)
    # the far end falls (almost) silent while near-end noise goes on
    far[FS:2 * FS] = 1e-5 * rng.standard_normal(FS)
    mic = echo + 0.01 * rng.standard_normal(len(echo)).astype(np.float32)
    M, R = _spectra(mic), _spectra(far)
    whole = SubbandEchoFilter(161).process(M, R)[0]
    f = SubbandEchoFilter(161)
    parts = np.concatenate([f.process(M[i:i + 7], R[i:i + 7])[0] for i in range(0, len(M), 7)])
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    # no divergence: after the silence the filter still cancels (an unregularized step
    # lets the weights wander on the silent reference: the error then exceeds the mic)
    late = slice(2 * 100 + 50, 3 * 100)
    assert np.sum(np.abs(whole[late]) ** 2) < 0.25 * np.sum(np.abs(M[late]) ** 2)
    wander = SubbandEchoFilter(161, regularize=0.0).process(M, R)[0]
    assert np.sum(np.abs(wander[late]) ** 2) > np.sum(np.abs(whole[late]) ** 2)
