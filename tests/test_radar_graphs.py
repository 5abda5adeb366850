"""Radar imaging blocks and graphs: the reconstruct and migration blocks, the radar graphs
on real files (sweeps, .mat) and real ZeroMQ sockets, PNG output, the synth and eval
commands and the forward operator in ONNX."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from cvstream.blocks.radar_imaging import RadarMigration, RadarReconstruct
from cvstream.errors import ParamError
from cvstream.models.radar.geometry import load_config
from cvstream.models.radar.operators import ImageFormation
from cvstream.models.radar.synth import make_scenes

from conftest import free_port, run_cli


def test_reconstruct_method_picks_the_shipped_model():
    block = RadarReconstruct(method="unrolled", config="published")
    assert block.path.endswith("radar_unrolled_published.onnx")
    assert block.cfg.image_shape == (25, 25, 49)
    assert RadarReconstruct(method="complex").path.endswith("radar_complex_small.onnx")
    with pytest.raises(ParamError, match="is not one of"):
        RadarReconstruct(method="fista")


def test_reconstruct_refuses_a_model_of_another_configuration():
    with pytest.raises(ParamError, match="not the configuration"):
        RadarReconstruct(model="builtin:radar_deep2s_small", config="published")
    with pytest.raises(ParamError, match="needs a radar_imaging model"):
        RadarReconstruct(model="builtin:iq_denoiser")


def test_migration_skips_and_counts_bad_sweeps():
    sweeps, _, _ = make_scenes("small", 4, seed=2)
    sweeps[1, 3, 2, 1] = np.nan
    sweeps[2, 0, 0, 0] = np.inf
    block = RadarMigration(config="small", method="kirchhoff")
    images = block.process(sweeps)
    assert images.shape == (2, 16, 16, 32) and block.counters["bad_sweeps"] == 2
    want = ImageFormation(load_config("small"), "kirchhoff").magnitude(sweeps[[0, 3]])
    np.testing.assert_allclose(images, want, atol=1e-6)
    assert block.process(sweeps[:0]).shape == (0, 16, 16, 32)
    silent = block.process(np.zeros((1, 16, 8, 8), np.complex64))   # no echo: a zero image
    assert np.array_equal(silent, np.zeros((1, 16, 16, 32), np.float32))


def write_sweeps(tmp_path, config="small", count=5, seed=4):
    sweeps, truth, _ = make_scenes(config, count, seed)
    path = tmp_path / "sweeps.npy"
    np.save(path, sweeps)
    return path, sweeps, truth


def test_radar_files_graph_images_every_sweep(tmp_path):
    src, sweeps, truth = write_sweeps(tmp_path)
    out = tmp_path / "images.npy"
    res = run_cli("run", "graphs/radar_files.yml", "--set", f"input={src}",
                  "--set", f"output={out}")
    assert res.returncode == 0, res.stderr
    images = np.load(out)
    assert images.shape == (5, 16, 16, 32) and images.dtype == np.float32
    np.testing.assert_allclose(images.max(axis=(1, 2, 3)), 1.0, atol=1e-6)
    same = RadarReconstruct(model="builtin:radar_deep2s_small").process(sweeps)
    np.testing.assert_allclose(images, same, atol=1e-5)


def test_radar_files_graph_refuses_sweeps_of_another_configuration(tmp_path):
    src, _, _ = write_sweeps(tmp_path)
    res = run_cli("run", "graphs/radar_files.yml", "--set", f"input={src}",
                  "--set", f"output={tmp_path / 'o.npy'}", "--set", "config=published")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "complex64[16x8x8]" in err[0] and "15x12x13" in err[0]


def test_radar_files_graph_on_an_empty_file_and_nan_sweeps(tmp_path):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 16, 8, 8), np.complex64))
    out = tmp_path / "o.npy"
    res = run_cli("run", "graphs/radar_files.yml", "--set", f"input={empty}",
                  "--set", f"output={out}")
    assert res.returncode != 0 and "holds no items" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    empty.write_bytes(b"")
    res = run_cli("run", "graphs/radar_files.yml", "--set", f"input={empty}",
                  "--set", f"output={out}")
    assert res.returncode != 0 and "not a readable .npy file" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    src, sweeps, _ = write_sweeps(tmp_path)
    sweeps[2, 0, 0, 0] = np.nan
    np.save(src, sweeps)
    res = run_cli("run", "graphs/radar_files.yml", "--set", f"input={src}",
                  "--set", f"output={out}", "--stats-json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    assert np.load(out).shape == (4, 16, 16, 32)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["blocks"]["image"]["counters"]["bad_sweeps"] == 1


def test_mat_source_feeds_the_imager(tmp_path, graph_file):
    import scipy.io
    sweeps, _, _ = make_scenes("small", 3, seed=5)
    mat = tmp_path / "scan.mat"
    scipy.io.savemat(mat, {"sweeps": sweeps.astype(np.complex128), "note": np.array([1.0])})
    out = tmp_path / "o.npy"
    graph = graph_file(f"""
        blocks:
          src: {{type: mat_source, path: "{mat}", variable: sweeps}}
          bp: {{type: radar_migration, config: small, method: backprojection}}
          out: {{type: npy_sink, path: "{out}"}}
        connections: [src -> bp, bp -> out]
        """)
    res = run_cli("run", str(graph))
    assert res.returncode == 0, res.stderr
    want = ImageFormation(load_config("small"), "backprojection").magnitude(sweeps)
    np.testing.assert_allclose(np.load(out), want, atol=1e-5)
    bad = graph_file(graph.read_text().replace("variable: sweeps", "variable: nope"))
    res = run_cli("run", str(bad))
    assert res.returncode != 0 and "has no variable 'nope'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_radar_demo_graph_writes_images_and_pictures(tmp_path):
    names = {k: tmp_path / v for k, v in [("images", "i.npy"), ("picture", "l.png"),
                                          ("baseline_picture", "k.png"),
                                          ("truth_picture", "t.png")]}
    res = run_cli("run", "graphs/radar_demo.yml", "--set", "count=3",
                  *[a for k, v in names.items() for a in ("--set", f"{k}={v}")])
    assert res.returncode == 0, res.stderr
    assert np.load(names["images"]).shape == (3, 16, 16, 32)
    for key in ("picture", "baseline_picture", "truth_picture"):
        data = names[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_radar_png_one_file_per_image(tmp_path):
    from cvstream.blocks.radar_io import RadarPng
    images = np.random.default_rng(0).uniform(size=(3, 16, 16, 32)).astype(np.float32)
    sink = RadarPng(path=str(tmp_path / "img{index}.png"), config="small")
    sink.process(images)
    sink.stop()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["img0.png", "img1.png",
                                                              "img2.png"]
    missing = RadarPng(path=str(tmp_path / "x.png"), index=5)
    missing.process(images)
    with pytest.raises(Exception, match="image 5 never arrived"):
        missing.stop()


def test_radar_zmq_graph_over_real_sockets(tmp_path):
    import zmq
    sweeps_port, images_port = free_port(), free_port()
    sweeps, _, _ = make_scenes("small", 4, seed=6)
    sweeps[1, 0, 0, 0] = np.nan
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(f"tcp://127.0.0.1:{images_port}")
    got = []

    def receive():
        pull.RCVTIMEO = 60_000
        while sum(len(g) for g in got) < 3:  # a message may carry several images
            got.append(np.frombuffer(pull.recv(), np.float32).reshape(-1, 16, 16, 32))
    thread = threading.Thread(target=receive)
    thread.start()
    import subprocess
    import sys
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvstream", "run", "graphs/radar_zmq.yml",
         "--set", f"sweeps=tcp://127.0.0.1:{sweeps_port}",
         "--set", f"images=tcp://127.0.0.1:{images_port}",
         "--stats-json", str(tmp_path / "s.json")],
        stderr=subprocess.PIPE, text=True)
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{sweeps_port}")
    for sweep in sweeps:
        push.send(sweep.tobytes())
    push.send(b"\x00" * 12)                     # not a whole sweep: counted, not imaged
    thread.join(90)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    push.close(0)
    pull.close(0)
    ctx.term()
    assert proc.returncode == 0, err
    images = np.concatenate(got)
    want = RadarReconstruct(model="builtin:radar_deep2s_small").process(sweeps[[0, 2, 3]])
    np.testing.assert_allclose(images, want, atol=1e-5)
    counters = json.loads((tmp_path / "s.json").read_text())["blocks"]
    assert counters["image"]["counters"]["bad_sweeps"] == 1
    assert sum(counters["rx"]["counters"].values()) >= 1


def test_synth_and_eval_commands(tmp_path):
    res = run_cli("models", "synth", "radar", "--out", str(tmp_path / "set"), "--count", "3",
                  "--config", "small", "--seed", "2")
    assert res.returncode == 0, res.stderr
    sweeps = np.load(tmp_path / "set" / "sweeps.npy")
    truth = np.load(tmp_path / "set" / "truth.npy")
    assert sweeps.shape == (3, 16, 8, 8) and truth.shape == (3, 16, 16, 32)
    again, _, _ = make_scenes("small", 3, seed=2)
    assert np.array_equal(sweeps, again)
    meta = json.loads((tmp_path / "set" / "meta.json").read_text())
    assert len(meta["snr_db"]) == 3
    assert load_config(str(tmp_path / "set" / "config.json")).same_as(load_config("small"))
    res = run_cli("models", "eval", "radar", "--config", "small", "--scenes", "2",
                  "--shapes", "unseen", "--fista-iterations", "20", timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("small")]
    assert [ln[1] for ln in lines] == ["unseen"] * 12
    assert [" ".join(ln[2:5]) for ln in lines[4:8]] == [
        "FISTA-L1 (20 it,", "FISTA-L1 (20 it)", "FISTA-group (20 it,", "FISTA-group (20 it)"]
    assert [ln[2] for ln in lines[8:]] == ["deep2s", "complex", "unrolled", "support"]
    res = run_cli("models", "eval", "radar", "--config", "small", "--scenes", "2",
                  "--shapes", "unseen", "--no-fista", timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("small")]
    assert [ln[2] for ln in rows] == ["empty", "adjoint", "backprojection", "kirchhoff",
                                      "deep2s", "complex", "unrolled", "support"]
    assert rows[-1] == lines[-1][:-1] + rows[-1][-1:]   # the same row, but for its time
    res = run_cli("models", "eval", "radar", "--fista-iterations", "60,x")
    assert res.returncode == 2 and "not a comma-separated list" in res.stderr


def test_forward_operator_in_onnx_matches_numpy(tmp_path, graph_file):
    pytest.importorskip("torch")
    from cvstream.models.radar.operators import ForwardOperator
    from cvstream.models.radar.train import export_forward
    path = tmp_path / "forward.onnx"
    report = export_forward("small", str(path))
    assert path.stat().st_size < 100_000 and report.max_abs_error < 2e-3
    cfg = load_config("small")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, *cfg.image_shape))
         + 1j * rng.standard_normal((3, *cfg.image_shape))).astype(np.complex64)
    src, out = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    graph = graph_file(f"""
        blocks:
          src: {{type: npy_source, path: "{src}", chunk: 2}}
          born: {{type: onnx_model, model: "{path}"}}
          out: {{type: npy_sink, path: "{out}"}}
        connections: [src -> born, born -> out]
        """)
    res = run_cli("run", str(graph))
    assert res.returncode == 0, res.stderr
    want = ForwardOperator(cfg)(x)
    got = np.load(out)
    assert got.shape == (3, 16, 8, 8)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_scene_source_does_not_depend_on_chunking():
    from cvstream.blocks.radar_io import RadarSceneSource
    a = [s for s, _ in RadarSceneSource(count=5, chunk=2, seed=4).read()]
    b = [s for s, _ in RadarSceneSource(count=5, chunk=5, seed=4).read()]
    assert np.array_equal(np.concatenate(a), np.concatenate(b)) and len(a) == 3
    c = np.concatenate([s for s, _ in RadarSceneSource(count=5, chunk=5, seed=5).read()])
    assert not np.array_equal(c, b[0])
