"""Streaming STFT / ISTFT: perfect reconstruction, chunked equals whole, in a graph."""
import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from cvstream.blocks.stft import ISTFT, STFT


def run(block, x, chunks):
    parts = [block.process(x[i:i + chunks]) for i in range(0, len(x), chunks)]
    parts.append(block.flush())
    return np.concatenate([p for p in parts if p is not None])


@pytest.mark.parametrize("size, hop, window", [(320, 160, "sqrt_hann"), (512, 128, "hann"),
                                               (256, 64, "sqrt_hann")])
def test_perfect_reconstruction_real(size, hop, window):
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    spec = STFT(size=size, hop=hop, window=window).process(x)
    assert spec.shape == (8000 // hop, size // 2 + 1) and spec.dtype == np.complex64
    y = ISTFT(size=size, hop=hop, window=window).process(spec)
    delay = size - hop
    np.testing.assert_allclose(y[delay:], x[:len(y) - delay], atol=2e-5)


def test_complex_and_chunked_equal_whole():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(5000) + 1j * rng.standard_normal(5000)).astype(np.complex64)
    whole = STFT(size=256, hop=128).process(x)
    chunked = run(STFT(size=256, hop=128), x, 333)
    np.testing.assert_array_equal(chunked[:len(whole)], whole)
    y_whole = ISTFT(size=256, hop=128, output="complex").process(whole)
    y_chunk = run(ISTFT(size=256, hop=128, output="complex"), whole, 7)
    np.testing.assert_allclose(y_chunk, y_whole, atol=1e-6)
    np.testing.assert_allclose(y_whole[128:], x[:len(y_whole) - 128], atol=2e-5)


def test_bad_window_hop_pair_is_refused():
    with pytest.raises(Exception, match="overlap-add"):
        ISTFT(size=256, hop=200, window="hamming")


def test_stft_istft_graph_on_audio(graph_file, tmp_path):
    rate = 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, rate, subtype="FLOAT")
    path = graph_file(f"""
    blocks:
      mic: {{type: audio_source, path: {tmp_path / 'in.wav'}, chunk: 1000}}
      spec: {{type: stft, size: 320, hop: 160}}
      back: {{type: istft, size: 320, hop: 160}}
      out: {{type: audio_sink, path: {tmp_path / 'out.wav'}, subtype: FLOAT}}
    connections: [mic -> spec, spec -> back, back -> out]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    y, r = sf.read(tmp_path / "out.wav", dtype="float32")
    assert r == rate and len(y) == rate
    np.testing.assert_allclose(y[160:], x[:-160], atol=1e-5)
