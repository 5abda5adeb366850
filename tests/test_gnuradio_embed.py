"""cvstream blocks inside GNU Radio: installed with pip into a venv of Debian's python3 that
sees its GNU Radio (--system-site-packages), used as native blocks in a gr.top_block and in a
GRC flow graph compiled with grcc."""
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
GR_DIR = Path(__file__).parent / "gr"
pytestmark = pytest.mark.gnuradio


@pytest.fixture(scope="session")
def gr_python(gnuradio, tmp_path_factory) -> str:
    """The python of a --system-site-packages venv of Debian's python3 with cvstream
    installed by pip, as the README tells GNU Radio users to do."""
    venv = tmp_path_factory.mktemp("grvenv") / "venv"
    subprocess.run([gnuradio, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    py = str(venv / "bin" / "python")
    done = subprocess.run([py, "-m", "pip", "install", "-q", str(REPO)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return py


def run_gr(py: str, *args, cwd, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([py, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_pip_install_keeps_debians_numpy_scipy_and_gnuradio(gr_python, tmp_path):
    out = run_gr(gr_python, "-c", textwrap.dedent("""
        import numpy, scipy, onnxruntime, cvstream.gnuradio, cvstream.blocks
        from gnuradio import gr, blocks
        print(numpy.__file__, numpy.__version__, scipy.__file__, gr.version())
        """), cwd=tmp_path).stdout.split()
    assert out[0].startswith("/usr/lib/python3/dist-packages/numpy/"), out
    assert out[1].startswith("1."), out
    assert out[2].startswith("/usr/lib/python3/dist-packages/scipy/"), out
    assert out[3].startswith("3.10"), out


def test_top_block_with_cvstream_blocks_matches_cvstream_and_carries_tags(gr_python, tmp_path):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(20000) + 1j * rng.standard_normal(20000)).astype(np.complex64)
    np.save(tmp_path / "x.npy", x)
    run_gr(gr_python, GR_DIR / "embed_chain.py", tmp_path / "x.npy", tmp_path / "out.npz",
           cwd=tmp_path)
    got = np.load(tmp_path / "out.npz")
    tags = json.loads(str(got["tags"]))
    # sync block: every sample, bit for bit
    assert np.array_equal(got["gain"], got["ref_gain"]) and len(got["gain"]) == 20000
    # rate block: every whole frame (the zero-padded last one comes at stop, counted)
    assert got["spec"].shape == (312, 64)
    assert np.array_equal(got["spec"], got["ref_spec"][:312])
    assert tags["counters"]["fft"] == {"tail_padded": 32, "lost_at_stop": 1}
    # history + rate change both ways (stft hop 32 -> istft): what GNU Radio let through;
    # overlap-add sums float32 pieces in an order that follows the chunking (in cvstream's
    # own scheduler too), so the last bits may differ
    n = len(got["back"])
    assert n >= 19000
    np.testing.assert_allclose(got["back"], got["ref_back"][:n], rtol=0, atol=2e-6)
    # GNU Radio's tag through cvstream blocks, moved by cvstream's rules (x interp / decim)
    assert tags["gain"] == [[5000, "rx_freq", 2.4e9]]
    assert tags["spec"] == [[5000 // 64, "rx_freq", 2.4e9]]
    assert tags["back"] == [[5000 // 32 * 32, "rx_freq", 2.4e9]]
    # a cvstream source: its samples and its own tags reach GNU Radio
    assert np.array_equal(got["sky"], got["ref_sky"][:30000])
    assert sorted(t[1] for t in tags["sky"] if t[0] == 0) == ["rx_freq", "rx_rate"]


def test_segmenter_detections_arrive_as_pmt_dicts(gr_python, tmp_path):
    run_gr(gr_python, GR_DIR / "embed_segmenter.py", tmp_path / "gr.jsonl", tmp_path / "gr.json",
           cwd=tmp_path)
    result = json.loads((tmp_path / "gr.json").read_text())
    stored, at_stop = result["stored"], result["counters"].get("messages_at_stop", 0)
    # the same graph run by cvstream itself
    graph = tmp_path / "seg.yml"
    graph.write_text(textwrap.dedent(f"""
        blocks:
          sky: {{type: spectrum_synth_source, rate: 20e6, freq: 2.45e9, scenes: 4, seed: 1,
                snr_min: 0, snr_max: 30}}
          seg: {{type: spectrum_segmenter, model: "builtin:spectrum_segmenter"}}
          out: {{type: message_sink, path: "{tmp_path / 'cv.jsonl'}"}}
        connections: [sky -> seg, seg.detections -> out]
        """))
    done = run_cli("run", str(graph))
    assert done.returncode == 0, done.stderr
    ours = [json.loads(line) for line in (tmp_path / "cv.jsonl").read_text().splitlines()]
    assert len(stored) >= 3 and len(stored) + at_stop == len(ours)
    for theirs, mine in zip(stored, ours):   # PMT dicts with the detection's fields
        assert theirs["label"] == mine["label"]
        assert theirs["sample_start"] == mine["sample_start"]
        assert theirs["freq_lower_edge"] == pytest.approx(mine["freq_lower_edge"], abs=1.0)
        assert 2.4e9 < theirs["freq_lower_edge"] < 2.5e9  # rx_freq crossed GNU Radio's buffer
    # a cvstream message_sink inside GNU Radio writes them too (those sent at stop only if
    # its thread is still running then: GNU Radio stops blocks in no set order)
    written = [json.loads(line) for line in (tmp_path / "gr.jsonl").read_text().splitlines()]
    assert len(stored) <= len(written) <= len(ours)
    assert [w["sample_start"] for w in written] == [m["sample_start"] for m in ours][
        :len(written)]


GRC_FLOWGRAPH = """
options:
  parameters: {id: cvstream_embed, title: cvstream in GRC, generate_options: no_gui,
               output_language: python, run: 'True', run_options: run}
  states: {coordinate: [10, 10], rotation: 0, state: enabled}
blocks:
- name: src
  id: analog_sig_source_x
  parameters: {type: complex, samp_rate: '32000', waveform: analog.GR_COS_WAVE, freq: '1000',
               amp: '1', offset: '0', phase: '0'}
  states: {coordinate: [10, 100], rotation: 0, state: enabled}
- name: head
  id: blocks_head
  parameters: {type: complex, num_items: '65536', vlen: '1'}
  states: {coordinate: [200, 100], rotation: 0, state: enabled}
- name: gain
  id: cvstream_multiply_const
  parameters: {k: '0.5', type: "'complex64'", vlen: '1'}
  states: {coordinate: [400, 100], rotation: 0, state: enabled}
- name: spec
  id: cvstream_fft
  parameters: {size: '256', output: "'db'", out_type: "'float32'", out_vlen: '256'}
  states: {coordinate: [600, 100], rotation: 0, state: enabled}
- name: sink
  id: blocks_file_sink
  parameters: {type: float, file: OUT, vlen: '256', append: 'False', unbuffered: 'False'}
  states: {coordinate: [800, 100], rotation: 0, state: enabled}
connections:
- [src, '0', head, '0']
- [head, '0', gain, '0']
- [gain, '0', spec, '0']
- [spec, '0', sink, '0']
metadata: {file_format: 1}
"""


def test_generated_grc_blocks_compile_with_grcc_and_run(gr_python, tmp_path):
    if not shutil.which("grcc"):
        pytest.fail("grcc (GNU Radio Companion's compiler) is missing")
    done = run_cli("grc", "--out", str(tmp_path / "blocks"))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "blocks").iterdir())
    assert "cvstream_spectrum_segmenter.block.yml" in files and len(files) >= 30
    out = tmp_path / "spec.f32"
    (tmp_path / "embed.grc").write_text(GRC_FLOWGRAPH.replace("OUT", str(out)))
    env = dict(os.environ, GRC_BLOCKS_PATH=str(tmp_path / "blocks"))
    compiled = subprocess.run(["grcc", "embed.grc", "-o", str(tmp_path)], cwd=tmp_path,
                              capture_output=True, text=True, env=env, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    script = (tmp_path / "cvstream_embed.py").read_text()
    assert "cvstream.gnuradio.block('fft', size=256" in script
    run_gr(gr_python, tmp_path / "cvstream_embed.py", cwd=tmp_path)
    spec = np.fromfile(out, np.float32).reshape(-1, 256)
    assert spec.shape == (256, 256)               # 65536 samples, 256-point frames
    assert set(spec.argmax(axis=1)) == {128 + 8}  # 1 kHz at 32 kHz: 8 bins above DC
    # a wrong declared output length is named when the block is built
    bad = run_gr_fails(gr_python, "-c", "import cvstream.gnuradio as cg; "
                       "cg.block('fft', size=256, expect={'out': ('float32', 128)})",
                       cwd=tmp_path)
    assert "fft: output 'out' carries complex64 x 256 with these parameters, declared " \
           "float32 x 128" in bad


def run_gr_fails(py, *args, cwd) -> str:
    done = subprocess.run([py, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode != 0
    return done.stderr
