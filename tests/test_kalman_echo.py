"""kalman_aec and its parts: the partitioned-block Kalman filter and the bulk-delay estimator."""
import json

import numpy as np
import pytest
import scipy.signal

from conftest import run_echo_canceller
from cvstream.blocks.echo_filter import linear_stage
from cvstream.blocks.kalman_echo import BulkDelayEstimator, KalmanAec, KalmanEchoCanceller

FS = 16000


def room(seed, delay, taps=2400):
    """A bulk delay, then a decaying random room response."""
    rng = np.random.default_rng(seed)
    h = np.zeros(delay + taps)
    h[delay:] = rng.standard_normal(taps) * np.exp(-np.arange(taps) / 400)
    return h / (2 * np.linalg.norm(h))


def far_end(seconds, seed=0):
    """Coloured noise, like speech's spectrum tilt (AR(2), resonance near 600 Hz)."""
    rng = np.random.default_rng(seed)
    x = scipy.signal.lfilter([1], [1, -1.6, 0.8], rng.standard_normal(FS * seconds))
    return (0.05 * x).astype(np.float32)


def erle(d, e):
    return 10 * np.log10(np.sum(d ** 2) / np.sum(e ** 2))


def test_finds_a_400_ms_bulk_delay_and_converges_behind_it():
    """400 ms is beyond the 32 x 10 ms partitions: without the delay estimator the filter
    cannot reach the echo at all."""
    far = far_end(8)
    echo = scipy.signal.lfilter(room(1, 6400), 1, far).astype(np.float32)
    aec = KalmanEchoCanceller(FS)
    err, est = aec.process(echo, far)
    assert abs(aec.delay - 6400) <= 160        # found within 10 ms (the direct path)
    assert erle(echo[6 * FS:], err[6 * FS:]) > 25
    blind, _ = KalmanEchoCanceller(FS, max_delay=0).process(echo, far)
    assert erle(echo[6 * FS:], blind[6 * FS:]) < 3


def test_holds_its_estimate_through_double_talk_and_follows_a_path_change():
    far = far_end(12)
    a = scipy.signal.lfilter(room(2, 1600), 1, far)
    b = scipy.signal.lfilter(room(3, 1600), 1, far)
    echo = np.concatenate([a[:8 * FS], b[8 * FS:]]).astype(np.float32)
    near = np.zeros_like(echo)
    rng = np.random.default_rng(4)
    near[4 * FS:6 * FS] = 2 * np.std(echo) * rng.standard_normal(2 * FS)  # +6 dB near end
    err, est = KalmanEchoCanceller(FS).process(echo + near, far)
    mis = lambda lo, hi: erle(echo[lo * FS:hi * FS], (echo - est)[lo * FS:hi * FS])  # noqa: E731
    assert mis(3, 4) > 30
    assert mis(4, 6) > 24                      # two seconds of double talk, 6 dB louder
    assert mis(7, 8) > 35
    assert mis(8, 9) < 3                       # the path changed at 8 s ...
    assert mis(10, 11) > 20                    # ... and the filter is back within 2-3 s
    assert mis(11, 12) > 30


def test_rectifier_channel_models_an_asymmetric_loudspeaker():
    """A loudspeaker that adds half its rectified input (x + |x| / 2): the |x| channel
    (channels 2) models what one linear channel cannot."""
    far = far_end(8, seed=11)
    played = far + 0.5 * np.abs(far)
    echo = scipy.signal.lfilter(room(12, 800), 1, played).astype(np.float32)
    one = KalmanEchoCanceller(FS).process(echo, far)[0]
    two = KalmanEchoCanceller(FS, channels=2).process(echo, far)[0]
    assert erle(echo[6 * FS:], one[6 * FS:]) < 12
    assert erle(echo[6 * FS:], two[6 * FS:]) > erle(echo[6 * FS:], one[6 * FS:]) + 10


def test_chunking_does_not_change_the_result_and_silence_passes_through():
    far = far_end(3)
    mic = scipy.signal.lfilter(room(5, 800), 1, far).astype(np.float32)
    whole = KalmanEchoCanceller(FS).process(mic, far)[0]
    aec = KalmanEchoCanceller(FS)
    parts = [aec.process(mic[k:k + 160 * 7], far[k:k + 160 * 7])[0]
             for k in range(0, len(mic), 160 * 7)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    near = (0.1 * np.random.default_rng(6).standard_normal(FS)).astype(np.float32)
    out, est = KalmanEchoCanceller(FS).process(near, np.zeros(FS, np.float32))
    np.testing.assert_array_equal(out, near)
    assert not est.any()
    with pytest.raises(ValueError, match="whole number of 160-sample blocks"):
        KalmanEchoCanceller(FS).process(near[:100], near[:100])


def test_delay_estimator_waits_for_a_far_end_and_is_confident():
    est = BulkDelayEstimator(FS, max_delay=0.5)
    assert est.push(np.zeros(FS, np.float32), np.zeros(FS, np.float32)) is None
    rng = np.random.default_rng(7)
    est.push(rng.standard_normal(2 * FS).astype(np.float32),       # unrelated signals
             rng.standard_normal(2 * FS).astype(np.float32))
    assert est.delay is None
    far = far_end(3, seed=8)
    mic = np.concatenate([np.zeros(4000, np.float32), far])[:len(far)]
    assert abs(est.push(mic, far) - 4000) <= 4 and est.updates == 1


def test_linear_stage_kinds():
    stage = linear_stage({"kind": "pfdkf", "partitions": 8}, 320, 160, FS)
    assert stage.filter.filter.parts == 8
    with pytest.raises(ValueError, match="kind 'rls' is not one of pfdkf"):
        linear_stage({"kind": "rls"}, 320, 160, FS)
    with pytest.raises(ValueError, match="kind None"):
        linear_stage({"taps": 32, "mu": 0.3}, 320, 160, FS)     # a per-bin NLMS spec
    with pytest.raises(TypeError):
        linear_stage({"kind": "pfdkf", "mu": 0.3}, 320, 160, FS)


def test_kalman_aec_graph_on_wav_files(graph_file, tmp_path):
    far = far_end(6, seed=9)
    echo = scipy.signal.lfilter(room(10, 4800), 1, far).astype(np.float32)
    res, out, rate = run_echo_canceller(graph_file, tmp_path, "{type: kalman_aec}", echo, far,
                                        FS, "--stats-json", str(tmp_path / "stats.json"))
    assert res.returncode == 0, res.stderr
    assert rate == FS and len(out) == len(echo)
    assert erle(echo[4 * FS:], out[4 * FS:]) > 25
    stats = json.loads((tmp_path / "stats.json").read_text())["blocks"]["aec"]
    assert stats["counters"]["delay_changes"] >= 1


def test_kalman_aec_parameters_are_checked():
    with pytest.raises(Exception, match="channels"):
        KalmanAec(channels=4)
