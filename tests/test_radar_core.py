"""Radar imaging core: configurations, the factorized Born operator and image formation,
the scene synthesizer and the metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cvstream.errors import CvstreamError
from cvstream.models.radar.evaluate import psnr, ssim3d
from cvstream.models.radar.geometry import C0, load_config
from cvstream.models.radar.operators import ForwardOperator, ImageFormation, METHODS
from cvstream.models.radar.synth import (EXTRA_SHAPES, PHASES, SHAPES, TRAIN_SHAPES,
                                         UNSEEN_SHAPES, SceneConfig, make_scenes,
                                         random_reflectivity, random_rotation, shape_mask)

TINY = {"name": "tiny",
        "tx": {"from": [-0.1, 0.1, 0.0], "to": [0.1, -0.1, 0.0], "count": 3},
        "rx": [[-0.1, -0.1, 0.0], [0.0, 0.0, 0.0], [0.1, 0.1, 0.0], [0.05, 0.05, 0.0]],
        "frequencies": [5e9, 9e9, 13e9],
        "grid": {"x": {"start": -0.05, "stop": 0.05, "count": 5},
                 "y": {"start": -0.05, "stop": 0.05, "count": 4},
                 "z": {"start": 0.3, "stop": 0.4, "count": 6}}}


def test_published_configuration_is_the_papers_setup():
    cfg = load_config("published")
    assert cfg.sweep_shape == (15, 12, 13) and cfg.image_shape == (25, 25, 49)
    np.testing.assert_allclose(cfg.rx[0], [-0.15, -0.15, 0])
    np.testing.assert_allclose(cfg.rx[-1], [0.15, 0.15, 0])
    np.testing.assert_allclose(cfg.tx[0], [-0.15, 0.15, 0])
    np.testing.assert_allclose(cfg.tx[-1], [0.15, -0.15, 0])
    np.testing.assert_allclose(np.diff(cfg.rx[:, 0]), 0.025)          # 13 evenly spaced
    np.testing.assert_allclose(cfg.freqs, np.linspace(4e9, 16e9, 15))
    assert (cfg.z[0], cfg.z[-1], cfg.x[0], cfg.y[-1]) == (0.35, 0.65, -0.15, 0.15)
    small = load_config("small")
    assert small.sweep_shape == (16, 8, 8) and small.image_shape == (16, 16, 32)


def test_configuration_round_trips_and_compares(tmp_path):
    cfg = load_config(TINY)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg.to_dict()))
    again = load_config(str(path))
    assert again.same_as(cfg) and not again.same_as(load_config("small"))
    assert cfg.sweep_shape == (3, 3, 4) and cfg.image_shape == (5, 4, 6)


@pytest.mark.parametrize("text, field", [
    ("tx: [[0, 0, 0]]\nrx: [[0, 0, 0]]\nfrequencies: [1e9]\n", "missing field(s) grid"),
    ("tx: [[0, 0]]\nrx: [[0, 0, 0]]\nfrequencies: [1e9]\ngrid: {x: [0], y: [0], z: [1]}\n",
     "tx: expected a list of [x, y, z]"),
    ("tx: [[0, 0, 0]]\nrx: [[0, 0, 0]]\nfrequencies: {start: 1e9}\n"
     "grid: {x: [0], y: [0], z: [1]}\n", "frequencies: needs start, stop and count"),
    ("tx: [[0, 0, 0]]\nrx: [[0, 0, 0]]\nfrequencies: [1e9]\ngrid: {x: [0], y: [0], z: [0]}\n",
     "within 1 mm of an antenna"),
    ("tx: [[0, 0, 0]\n", "not valid YAML"),
])
def test_bad_configurations_get_one_line_naming_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(CvstreamError) as err:
        load_config(str(path))
    msg = str(err.value)
    assert field in msg and str(path) in msg and "\n" not in msg
    with pytest.raises(CvstreamError, match="neither a shipped configuration"):
        load_config("nonexistent")


def dense_born(cfg) -> np.ndarray:
    """The Born matrix (K T R, N) straight from its definition, in float64."""
    vox = cfg.voxels()
    rows = []
    for f in cfg.freqs:
        k = 2 * np.pi * f / C0
        for pt in cfg.tx:
            for pr in cfg.rx:
                rt = np.linalg.norm(vox - pt, axis=1)
                rr = np.linalg.norm(vox - pr, axis=1)
                rows.append(np.exp(-1j * k * (rt + rr)) / (4 * np.pi * rt * rr))
    return np.array(rows)


def test_factorized_forward_and_adjoint_equal_the_dense_born_operator():
    cfg = load_config(TINY)
    a = dense_born(cfg)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, cfg.n_voxels)) + 1j * rng.standard_normal((2, cfg.n_voxels))
    y = ForwardOperator(cfg)(x).reshape(2, -1)
    np.testing.assert_allclose(y, x @ a.T, rtol=2e-5, atol=2e-5 * np.abs(y).max())
    sweeps = (rng.standard_normal((2, *cfg.sweep_shape))
              + 1j * rng.standard_normal((2, *cfg.sweep_shape)))
    img = ImageFormation(cfg, "adjoint")(sweeps)
    want = sweeps.reshape(2, -1) @ a.conj()
    np.testing.assert_allclose(img, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())
    # per-antenna tables: K (T + R) N values, not K T R N
    op = ImageFormation(cfg, "adjoint")
    k, t, r = cfg.sweep_shape
    assert op.g_tx.size + op.g_rx.size == k * (t + r) * cfg.n_voxels


def test_adjoint_identity_on_the_small_configuration():
    cfg = load_config("small")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((1, cfg.n_voxels)) + 1j * rng.standard_normal((1, cfg.n_voxels)))
    y = (rng.standard_normal((1, *cfg.sweep_shape))
         + 1j * rng.standard_normal((1, *cfg.sweep_shape)))
    lhs = np.vdot(ForwardOperator(cfg)(x), y)
    rhs = np.vdot(x, ImageFormation(cfg, "adjoint")(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_every_method_focuses_a_point_target_on_its_voxel(method):
    cfg = load_config("small")
    x = np.zeros((1, *cfg.image_shape), np.complex64)
    where = (5, 10, 20)
    x[(0, *where)] = 1.0
    image = ImageFormation(cfg, method).magnitude(ForwardOperator(cfg)(x))[0]
    assert image.max() == pytest.approx(1.0, abs=1e-6)
    assert np.unravel_index(image.argmax(), image.shape) == where


def test_scenes_are_deterministic_noisy_at_their_snr_and_labelled():
    s1, t1, snr1 = make_scenes("small", 4, seed=3)
    s2, t2, snr2 = make_scenes("small", 4, seed=3)
    assert np.array_equal(s1, s2) and np.array_equal(t1, t2)
    assert s1.shape == (4, 16, 8, 8) and s1.dtype == np.complex64
    assert t1.shape == (4, 16, 16, 32) and np.allclose(t1.reshape(4, -1).max(1), 1.0)
    assert np.all((snr1 >= 20) & (snr1 <= 40))
    # the noise-free part is the Born forward model of a reflectivity with the same support
    s3, _, _ = make_scenes("small", 4, seed=4)
    assert not np.array_equal(s1, s3)


@pytest.mark.parametrize("kind", SHAPES + EXTRA_SHAPES)
def test_every_shape_kind_fills_some_but_not_all_voxels(kind):
    rng = np.random.default_rng(5)
    cfg = load_config("small")
    local = (cfg.voxels() - [0.0, 0.0, 0.5]) @ random_rotation(rng)
    inside = shape_mask(kind, local, 0.07, rng)
    assert 0 < inside.sum() < 0.5 * len(inside)


def test_psnr_and_ssim_values():
    rng = np.random.default_rng(6)
    truth = rng.uniform(size=(12, 12, 12)).astype(np.float32)
    assert psnr(truth, truth) == float("inf")
    assert psnr(truth + 0.1, truth) == pytest.approx(20.0, abs=1e-3)   # MSE 0.01
    assert ssim3d(truth, truth) == pytest.approx(1.0, abs=1e-9)
    noisy = np.clip(truth + rng.normal(0, 0.3, truth.shape), 0, 1)
    assert ssim3d(noisy, truth) < 0.8
    assert ssim3d(rng.uniform(size=truth.shape), truth) < 0.2


def test_training_families_leave_the_held_out_families_out():
    assert not set(TRAIN_SHAPES) & set(UNSEEN_SHAPES) and set(SHAPES) < set(TRAIN_SHAPES)


@pytest.mark.parametrize("model", PHASES)
def test_surface_phase_models(model):
    """'random': independent phases (no relation between neighbours); 'constant': one phase
    per shape; 'smooth': neighbouring voxels close in phase; 'rough': in between."""
    cfg = load_config("small")
    scene = SceneConfig(shapes=("box",), max_objects=1, phases=(model,), size_m=(0.06, 0.08))
    x = random_reflectivity(cfg, np.random.default_rng(8), scene)
    on = np.abs(x) > 0
    assert on.sum() > 50
    # phase difference between z-neighbours that both reflect
    both = on[:, :, 1:] & on[:, :, :-1]
    step = np.angle(x[:, :, 1:][both] * np.conj(x[:, :, :-1][both]))
    spread = float(np.abs(np.exp(1j * step).mean()))   # 1: identical steps, 0: random
    if model == "constant":
        assert np.allclose(step, 0, atol=1e-5)
    elif model == "smooth":
        assert spread > 0.5
    elif model == "random":
        assert spread < 0.3
    else:
        assert spread < 0.95


def test_default_scenes_draw_only_the_first_families_with_random_phase():
    """The evaluation sets of the first models stay what they were: the default scene
    config draws SHAPES with independent phases; TRAIN_SHAPES and PHASES are opt-in."""
    a, ta, _ = make_scenes("small", 3, seed=11)
    b, tb, _ = make_scenes("small", 3, seed=11, scene=SceneConfig(phases=("random",)))
    assert np.array_equal(a, b) and np.array_equal(ta, tb)
    c, _, _ = make_scenes("small", 3, seed=11, scene=SceneConfig(shapes=TRAIN_SHAPES,
                                                                 phases=PHASES))
    assert not np.array_equal(a, c)
