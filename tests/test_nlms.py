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
