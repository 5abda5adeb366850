"""The neural Kalman filter: its training path (torch) and its runtime (numpy + ONNX Runtime)
agree, a tiny configuration trains, the shipped gain model cancels echo, and bad gain models
are refused in one line."""
import numpy as np
import pytest
import scipy.signal
import torch

from cvstream.blocks.echo_filter import linear_stage
from cvstream.blocks.kalman_echo import KalmanAec, KalmanEchoCanceller
from cvstream.errors import CvstreamError
from cvstream.models import SHIPPED_DIR
from cvstream.models.aec import nkf
from cvstream.models.export import export_model
from test_kalman_echo import FS, erle, far_end, room


def test_runtime_filter_equals_the_training_filter(tmp_path):
    """The numpy filter around the exported gain network gives the torch training loop's
    echo estimate, block for block (a randomized network, so the gain varies)."""
    model = nkf.build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = str(tmp_path / "nkf.onnx")
    export_model(model, nkf.contract(model), path)
    far = far_end(1, seed=21)
    mic = scipy.signal.lfilter(room(22, 300), 1, far).astype(np.float32)
    err, est = KalmanEchoCanceller(FS, max_delay=0, gain_model=path).process(mic, far)
    with torch.no_grad():
        want = nkf.run(model, torch.from_numpy(mic.reshape(1, -1, nkf.BLOCK)),
                       torch.from_numpy(nkf.ref_spectra(far, 0)[None]))
    np.testing.assert_allclose(est, want.reshape(-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(err, mic - est, atol=1e-6)
    assert np.abs(est).max() > 0.01


def test_tiny_training_lowers_the_loss_and_exports(tmp_path):
    losses = []
    model = nkf.train(steps=6, scenes=4, batch=2, frames=60,
                      progress=lambda i, n, loss: losses.append(loss))
    assert len(losses) == 6 and all(np.isfinite(losses))
    path = str(tmp_path / "tiny.onnx")
    report = export_model(model, nkf.contract(model), path)
    assert report.max_abs_error < 1e-4 and 4000 < report.real_params < 8000
    far = far_end(1, seed=23)
    err, _ = KalmanEchoCanceller(FS, gain_model=path).process(far, far)
    assert np.isfinite(err).all()


def test_shipped_gain_model_cancels_echo_and_survives_double_talk():
    """A linear echo path behind 200 ms: the NKF converges and keeps part of its estimate
    through two seconds of near-end noise 6 dB above the echo (the Kalman recursion keeps
    more: ``test_kalman_echo``; the README compares the two)."""
    far = far_end(10, seed=24)
    echo = scipy.signal.lfilter(room(25, 3200), 1, far).astype(np.float32)
    near = np.zeros_like(echo)
    rng = np.random.default_rng(26)
    near[6 * FS:8 * FS] = 2 * np.std(echo) * rng.standard_normal(2 * FS)  # +6 dB near end
    aec = KalmanEchoCanceller(FS, gain_model="builtin:aec_nkf")
    err, est = aec.process(echo + near, far)
    assert abs(aec.delay - 3200) <= 160
    mis = lambda lo, hi: erle(echo[lo * FS:hi * FS], (echo - est)[lo * FS:hi * FS])  # noqa: E731
    assert mis(4, 6) > 20
    assert mis(6, 8) > 6                       # double talk: disturbed, not lost
    assert mis(8, 10) > 10


def test_gain_models_are_checked():
    with pytest.raises(CvstreamError, match="gain_model.*aec model"):
        KalmanAec(gain_model="builtin:aec_cv")
    with pytest.raises(CvstreamError, match="gain_model.*32 partitions of 160 samples, "
                                            "not 16 of 160"):
        KalmanAec(gain_model="builtin:aec_nkf", partitions=16)
    with pytest.raises(CvstreamError, match="channels.*one reference channel"):
        KalmanAec(gain_model="builtin:aec_nkf", channels=2)
    stage = linear_stage({"kind": "nkf", "partitions": 32}, 320, 160, FS)
    assert type(stage.filter.filter).__name__ == "NeuralKalmanFilter"
    assert (SHIPPED_DIR / "aec_nkf.onnx").exists()


def test_compare_prints_both_linear_stages():
    result = nkf.compare("builtin:aec_nkf", 1)
    text = nkf.format_table(result)
    for scenario in ("fst", "nst", "dt", "epc"):
        assert set(result["table"][scenario]) == {"kalman_aec (cvstream)", nkf.NKF_ROW}
        assert f"{scenario} | {nkf.NKF_ROW} |" in text
    assert result["table"]["fst"][nkf.NKF_ROW]["erle_db"] > 0
    assert f"{nkf.NKF_ROW} |" in text.split("echo path changed")[1]
