"""The block library on real files in standard formats."""
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from cvstream.blocks.basic import Convert
from cvstream.blocks.fft import FFT
from cvstream.blocks.formats import FORMATS
from cvstream.blocks.npy_io import NpySink
from cvstream.blocks.signal_source import SignalSource


@pytest.mark.parametrize("fmt, raw, expect", [
    ("ci16", np.array([16384, -32768], np.int16), 0.5 - 1j),
    ("ci8", np.array([64, -128], np.int8), 0.5 - 1j),
    ("cu8", np.array([255, 0], np.uint8), 1 - 1j),
])
def test_sdr_scaling(fmt, raw, expect):
    assert FORMATS[fmt].decode(raw)[0] == pytest.approx(expect)


@pytest.mark.parametrize("fmt", ["cf32", "ci16", "ci8", "cu8", "f32"])
def test_file_round_trip_through_cli(graph_file, tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    rng = np.random.default_rng(1)
    is_complex = fmt != "f32"
    n = 100003
    x = (rng.uniform(-0.9, 0.9, 2 * n if is_complex else n)).astype(np.float32)
    raw, _ = FORMATS[fmt].encode(x.view(np.complex64) if is_complex else x)
    raw.tofile(src)
    out = tmp_path / f"out.{fmt}"
    path = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {src}, format: {fmt}, chunk: 4096}}
      snk: {{type: file_sink, path: {out}, format: {fmt}}}
    connections: [src -> snk]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == src.read_bytes()


def test_trailing_partial_item_is_counted(graph_file, tmp_path):
    src = tmp_path / "odd.cf32"
    src.write_bytes(np.ones(10, np.complex64).tobytes() + b"\x01\x02\x03")
    stats = tmp_path / "stats.json"
    path = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {src}}}
      snk: {{type: null_sink}}
    connections: [src -> snk]
    """)
    res = run_cli("run", str(path), "--stats-json", str(stats))
    assert res.returncode == 0, res.stderr
    report = json.loads(stats.read_text())["blocks"]
    assert report["src"]["counters"]["trailing_bytes"] == 3
    assert report["snk"]["items_in"] == 10


def test_convert_scaling_and_clipping():
    c = Convert(to="ci16")
    x = np.array([0.5 + 0.25j, 2.0 - 2.0j], np.complex64)
    y = c.process(x)
    assert y.dtype == np.int16 and y.shape == (2, 2)
    np.testing.assert_array_equal(y, [[16384, 8192], [32767, -32768]])
    assert c.counters["clipped"] == 2
    back = Convert(to="cf32").process(y)
    assert back[0] == pytest.approx(0.5 + 0.25j)
    mag = Convert(to="f32", part="mag").process(x)
    assert mag.dtype == np.float32 and mag[0] == pytest.approx(abs(0.5 + 0.25j))


def test_fft_finds_the_tone():
    rate, f = 1e6, 125e3
    src = SignalSource(rate=rate, freq=f, chunk=4096, items=4096)
    x = next(src.read())
    spec = FFT(size=1024, output="db").process(x)
    assert spec.shape == (4, 1024)
    peak = np.argmax(spec[-1])
    assert peak == 512 + int(f / rate * 1024)
    # window-normalised: a unit tone reads 10*log10(sum(w)^2/sum(w^2))
    assert spec[-1, peak] == pytest.approx(10 * np.log10(1024 * 0.6667), abs=0.2)


def test_npy_sink_streams_a_valid_file(tmp_path):
    out = tmp_path / "v.npy"
    sink = NpySink(path=str(out))
    frames = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    sink.process(frames)
    sink.process(frames + 100)
    sink.stop()
    back = np.load(out)
    assert back.shape == (4, 3, 4)
    np.testing.assert_array_equal(back[2:], frames + 100)


def test_npy_source_to_npy_sink(graph_file, tmp_path):
    sweeps = (np.random.default_rng(0).standard_normal((7, 5, 3, 2))
              + 1j).astype(np.complex128)
    np.save(tmp_path / "s.npy", sweeps)
    path = graph_file(f"""
    blocks:
      src: {{type: npy_source, path: {tmp_path / 's.npy'}, chunk: 2}}
      snk: {{type: npy_sink, path: {tmp_path / 'o.npy'}}}
    connections: [src -> snk]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    back = np.load(tmp_path / "o.npy")
    assert back.dtype == np.complex64 and back.shape == (7, 5, 3, 2)
    np.testing.assert_allclose(back, sweeps, rtol=1e-6)


def test_audio_round_trip_keeps_rate_via_tag(graph_file, tmp_path):
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "in.flac", tone, rate)
    path = graph_file(f"""
    blocks:
      mic: {{type: audio_source, path: {tmp_path / 'in.flac'}, chunk: 1000}}
      gain: {{type: multiply_const, k: 0.5}}
      out: {{type: audio_sink, path: {tmp_path / 'out.wav'}, subtype: FLOAT}}
    connections: [mic -> gain, gain -> out]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    y, r = sf.read(tmp_path / "out.wav", dtype="float32")
    assert r == rate and len(y) == rate
    np.testing.assert_allclose(y, tone * 0.5, atol=1e-4)


def test_stereo_audio_items_are_vectors(graph_file, tmp_path):
    stereo = np.stack([np.linspace(-1, 1, 800), np.zeros(800)], axis=1).astype(np.float32)
    sf.write(tmp_path / "st.wav", stereo, 8000, subtype="FLOAT")
    path = graph_file(f"""
    blocks:
      mic: {{type: audio_source, path: {tmp_path / 'st.wav'}, channels: all}}
      out: {{type: npy_sink, path: {tmp_path / 'st.npy'}}}
    connections: [mic -> out]
    """)
    assert run_cli("run", str(path)).returncode == 0
    np.testing.assert_allclose(np.load(tmp_path / "st.npy"), stereo)


def _write_sigmf(tmp_path, datatype, raw, rate=2e6, freq=915e6):
    meta = {"global": {"core:datatype": datatype, "core:sample_rate": rate,
                       "core:version": "1.2.0"},
            "captures": [{"core:sample_start": 0, "core:frequency": freq}],
            "annotations": []}
    (tmp_path / "rec.sigmf-meta").write_text(json.dumps(meta))
    raw.tofile(tmp_path / "rec.sigmf-data")
    return tmp_path / "rec.sigmf-meta"


def test_sigmf_source_to_sink_with_tags_and_annotations(graph_file, tmp_path):
    raw = np.arange(20000, dtype=np.int16) % 2000 - 1000
    meta = _write_sigmf(tmp_path, "ci16_le", raw)
    out = tmp_path / "copy.sigmf-meta"
    path = graph_file(f"""
    blocks:
      rec: {{type: sigmf_source, path: {meta}, chunk: 3000}}
      snk: {{type: sigmf_sink, path: {out}, description: copy}}
    connections: [rec -> snk]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    from sigmf import sigmffile
    rec = sigmffile.fromfile(str(out))
    assert rec.get_global_field("core:sample_rate") == 2e6
    assert rec.get_captures()[0]["core:frequency"] == 915e6
    samples = rec.read_samples()
    np.testing.assert_allclose(samples, FORMATS["ci16"].decode(raw), atol=1e-7)


def test_sigmf_sink_writes_annotations_from_messages(tmp_path):
    from cvstream.blocks.sigmf_io import SigMFSink
    sink = SigMFSink(path=str(tmp_path / "a.sigmf-meta"), rate=1e6, freq=100e6)
    sink.start()
    sink.work(np.zeros(1000, np.complex64))
    sink.on_message("annotations", {"sample_start": 10, "sample_count": 100,
                                     "freq_lower_edge": 99.9e6, "freq_upper_edge": 100.1e6,
                                     "label": "qpsk"})
    sink.stop()
    from sigmf import sigmffile
    rec = sigmffile.fromfile(str(tmp_path / "a.sigmf-meta"))
    ann = rec.get_annotations()
    assert ann[0]["core:label"] == "qpsk" and ann[0]["core:sample_count"] == 100


@pytest.mark.parametrize("meta_text, words", [
    ('{"global": {"core:datatype": "cf64_be", "core:version": "1.2.0"}, "captures": [], '
     '"annotations": []}', "datatype 'cf64_be' is not supported"),
    ("not json", "not JSON"),
    ("[1, 2]", "the top level is a list"),
    ('{"global": {"core:datatype": "cf32_le", "core:version": "1.2.0", '
     '"core:sample_rate": "abc"}, "captures": [], "annotations": []}',
     "global/core:sample_rate: 'abc' is not of type 'number'"),
    ('{"global": {"core:datatype": "cf32_le", "core:version": "1.2.0"}, '
     '"captures": [{"core:sample_start": 0, "core:frequency": "x"}], "annotations": []}',
     "captures/0/core:frequency: 'x' is not of type 'number'"),
])
def test_bad_sigmf_recordings_get_one_line(graph_file, tmp_path, meta_text, words):
    (tmp_path / "bad.sigmf-meta").write_text(meta_text)
    (tmp_path / "bad.sigmf-data").write_bytes(b"\0" * 64)
    path = graph_file(f"""
    blocks:
      rec: {{type: sigmf_source, path: {tmp_path / 'bad.sigmf-meta'}}}
      snk: {{type: null_sink}}
    connections: [rec -> snk]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 2
    assert words in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_sigmf_data_file(graph_file, tmp_path):
    meta = _write_sigmf(tmp_path, "cf32_le", np.zeros(4, np.complex64))
    (tmp_path / "rec.sigmf-data").unlink()
    path = graph_file(f"""
    blocks:
      rec: {{type: sigmf_source, path: {meta}}}
      snk: {{type: null_sink}}
    connections: [rec -> snk]
    """)
    res = run_cli("validate", str(path))
    assert res.returncode == 2 and "data file" in res.stderr and "missing" in res.stderr
