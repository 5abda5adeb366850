"""The shipped models: their contracts, their outputs, and a tiny run of their training path."""
import numpy as np
import pytest

from cvstream.contract import read_contract
from cvstream.models import resolve_model, shipped_models
from cvstream.models.demo import denoiser


def test_iq_denoiser_contract():
    assert "iq_denoiser" in shipped_models()
    c = read_contract(resolve_model("builtin:iq_denoiser"))
    assert (c.task, c.chunk, c.history, c.delay) == ("iq_denoise", 4096, 64, 16)
    assert c.inputs[0].packing == "interleaved" and c.normalization == "rms_restore"
    # the evaluation stored at export is the table the README quotes
    assert set(c.evaluation) == {"-5 dB", "+0 dB", "+5 dB", "+10 dB"}
    for row in c.evaluation.values():
        assert row["network"] > row["lowpass"] + 1.0


def test_iq_denoiser_cleans_a_held_out_signal():
    rng = np.random.default_rng(2024)
    noisy, clean = denoiser.synth(rng, 5 * 4096, snr_db=0.0)
    out = denoiser.run_onnx("builtin:iq_denoiser")(noisy)
    d = denoiser.DELAY
    before = denoiser.snr_db(noisy[256:], clean[256:])
    after = denoiser.snr_db(out[d + 256:], clean[256:len(clean) - d])
    assert before == pytest.approx(0.0, abs=0.3)
    assert after > before + 7.0
    # scale-invariant: the same signal 100x louder gives the same SNR
    out2 = denoiser.run_onnx("builtin:iq_denoiser")(noisy * 100)
    np.testing.assert_allclose(out2 / 100, out, atol=1e-4)


def test_training_path_tiny_run(tmp_path):
    pytest.importorskip("torch")
    from cvstream.models.export import export_model
    losses = []
    model = denoiser.train(steps=6, batch=4, length=256,
                           progress=lambda s, n, loss: losses.append(loss))
    assert len(losses) == 6 and all(np.isfinite(losses))
    report = export_model(model, denoiser.contract(), str(tmp_path / "tiny.onnx"))
    assert report.max_abs_error <= 1e-4
    table = denoiser.evaluate(denoiser.run_onnx(str(tmp_path / "tiny.onnx")), examples=1,
                              n=2 * 4096)
    assert set(table) == {"-5 dB", "+0 dB", "+5 dB", "+10 dB"}
