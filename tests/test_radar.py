"""Radar imaging: the learned models (training path, export, shipped contracts, against
Kirchhoff migration and FISTA) and the evaluation (``test_radar_graphs.py``: the blocks
and graphs)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cvstream.blocks.radar_imaging import RadarReconstruct
from cvstream.contract import read_contract
from cvstream.errors import ParamError
from cvstream.models import resolve_model
from cvstream.models.radar.evaluate import evaluate, onnx_imager
from cvstream.models.radar.geometry import load_config
from cvstream.models.radar.operators import ImageFormation
from cvstream.models.radar.synth import make_scenes

from test_radar_core import TINY

KINDS = ("deep2s", "complex", "unrolled", "support")
SHIPPED = [(kind, config) for kind in KINDS for config in ("small", "published")]


def test_support_training_turns_its_batches_on_a_symmetric_array(monkeypatch):
    """A tiny X-shaped array with a square grid has both symmetries, so the support
    network's training turns its batches (feature and truth volumes turned together, about
    half the steps) and its loss still falls over a few steps."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.train import Recipe, train_support
    turned = []
    flip = torch.Tensor.flip
    monkeypatch.setattr(torch.Tensor, "flip", lambda t, *dims: turned.append(
        (t.ndim, dims)) or flip(t, *dims))
    cfg = load_config({**TINY, "rx": {"from": [-0.1, -0.1, 0.0], "to": [0.1, 0.1, 0.0],
                                      "count": 3},
                       "grid": {**TINY["grid"], "y": TINY["grid"]["x"]}})
    assert cfg.symmetries() == ("transpose", "turn")
    losses = []
    net = train_support(cfg, Recipe(scenes=8, steps=40, batch=4, lr=1e-2), seed=1,
                        widths=(4, 8, 8), progress=lambda d, n, loss: losses.append(loss))
    assert len(losses) == 40 and np.isfinite(losses).all()
    # each turn flips the features (B, 2, x, y, z) and the truth (B, x, y, z) in x and y
    assert 10 <= len(turned) // 2 <= 30
    assert sorted(set(turned)) == [(4, (-3, -2)), (5, (-3, -2))]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert float(net.gamma) in (1.0, 2.0, 3.0)


def test_a_turned_scene_measures_as_the_original_and_images_turned():
    """The X-shaped arrays' symmetries (which the support network's training turns its
    batches by) are the physics': a scene transposed (x <-> y) or turned (x, y -> -x, -y)
    gives the same measurements up to the order of the antennas, and its adjoint image is
    the original's, turned the same way. An array moved off its symmetry has neither."""
    from cvstream.models.radar.geometry import config_from_dict
    from cvstream.models.radar.operators import ForwardOperator, ImageFormation
    cfg = load_config("small")
    assert cfg.symmetries() == ("transpose", "turn")
    rng = np.random.default_rng(4)
    x = np.zeros((1, *cfg.image_shape), np.complex64)
    x[0, 3:7, 9:11, 5:20] = np.exp(2j * np.pi * rng.random((4, 2, 15)))
    # each move, and the order it puts the (Tx, Rx) antennas in: transposing reverses the
    # Tx line (the anti-diagonal), turning reverses both lines
    moves = {"transpose": (lambda a: a.swapaxes(-3, -2), lambda y: y[:, :, ::-1]),
             "turn": (lambda a: a[..., ::-1, ::-1, :], lambda y: y[:, :, ::-1, ::-1])}
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    y = forward(x)
    image = np.abs(adjoint(y)).reshape(1, *cfg.image_shape)
    for name, (move, antennas) in moves.items():
        y_moved = forward(np.ascontiguousarray(move(x)))
        assert np.allclose(antennas(y_moved), y, rtol=0, atol=1e-5 * np.abs(y).max())
        moved_image = np.abs(adjoint(y_moved)).reshape(1, *cfg.image_shape)
        assert np.allclose(moved_image, move(image), rtol=1e-3, atol=1e-4 * image.max())
        assert not np.allclose(move(image), image, rtol=1e-3, atol=1e-4 * image.max())
    data = cfg.to_dict()
    data["tx"] = [[p[0] + 0.01, p[1], p[2]] for p in data["tx"]]
    assert config_from_dict(data).symmetries() == ()


def test_the_operator_folded_by_the_arrays_symmetries_is_the_dense_one():
    """``FoldedOperands`` keeps the dense operator's rows for one voxel of each orbit of
    the array's four moves (identity, transpose, turn, both) and gives the same A x and
    A^H y as the full matrix; an array without symmetries is not folded."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.geometry import config_from_dict
    from cvstream.models.radar.network import BornTables, FoldedOperands
    cfg = load_config("small")
    group = cfg.symmetry_group()
    assert len(group) == 4 and (group[0].voxels == np.arange(cfg.n_voxels)).all()
    # the turn: voxel (i, j, k) -> (15 - i, 15 - j, k), both antenna lines reversed
    turn = group[2].voxels.reshape(cfg.image_shape)
    assert turn[0, 1, 5] == np.ravel_multi_index((15, 14, 5), cfg.image_shape)
    assert (group[2].tx == np.arange(8)[::-1]).all() and (group[2].rx == group[2].tx).all()
    dense = BornTables(cfg, dense=True).tables()
    folded = BornTables(cfg, dense=True, fold=True).tables()
    assert isinstance(folded, FoldedOperands)
    n_rows = folded.rows.p_re.shape[0]
    assert cfg.n_voxels / 4 <= n_rows < cfg.n_voxels / 3
    torch.manual_seed(0)
    x = torch.randn(3, cfg.n_voxels), torch.randn(3, cfg.n_voxels)
    y = torch.randn(3, *cfg.sweep_shape), torch.randn(3, *cfg.sweep_shape)
    for want, got in [(dense.forward(*x), folded.forward(*x)),
                      (dense.adjoint(*y), folded.adjoint(*y))]:
        for a, b in zip(want, got):
            assert a.shape == b.shape
            assert float((a - b).abs().max()) < 1e-5 * float(a.abs().max())
    data = cfg.to_dict()
    data["rx"] = [[p[0] + 0.01, p[1], p[2]] for p in data["rx"]]
    moved = config_from_dict(data)
    assert len(moved.symmetry_group()) == 1
    assert not BornTables(moved, dense=True, fold=True).fold


def test_adjoint_layer_matches_numpy_and_stays_out_of_the_file(tmp_path):
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.network import AdjointLayer, make_network
    from cvstream.models.radar.train import export
    cfg = load_config("small")
    rng = np.random.default_rng(0)
    sweep = (rng.standard_normal((2, *cfg.sweep_shape))
             + 1j * rng.standard_normal((2, *cfg.sweep_shape))).astype(np.complex64)
    feed = torch.from_numpy(sweep.view(np.float32).reshape(2, 1, *cfg.sweep_shape, 2))
    re, im = AdjointLayer(cfg)(feed)
    want = ImageFormation(cfg, "adjoint")(sweep).reshape(2, *cfg.image_shape)
    got = (re + 1j * im).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    path = tmp_path / "m.onnx"
    report = export(cfg, "deep2s", make_network("deep2s", (2, 4)).eval(), str(path))
    assert report.max_abs_error <= 1e-4
    table_bytes = 8 * cfg.sweep_shape[0] * (cfg.sweep_shape[1] + cfg.sweep_shape[2]) \
        * cfg.n_voxels
    assert path.stat().st_size < table_bytes / 20   # the tables are computed at load time


@pytest.mark.parametrize("dense", [False, True])
def test_born_operands_match_numpy_and_are_each_others_adjoint(dense):
    """Both layouts of the Born operator (per antenna, with the forward's products by
    Gauss's rule; dense) give numpy's A x and A^H y for a batch, and <A x, y> = <x, A^H y>."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.network import BornTables
    from cvstream.models.radar.operators import ForwardOperator
    cfg = load_config("small")
    rng = np.random.default_rng(3)

    def noise(shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    x, y = noise((3, cfg.n_voxels)), noise((3, *cfg.sweep_shape))
    ops = BornTables(cfg, dense=dense).tables()
    with torch.no_grad():
        ax = ops.forward(*(torch.from_numpy(np.ascontiguousarray(p)) for p in (x.real, x.imag)))
        ahy = ops.adjoint(*(torch.from_numpy(np.ascontiguousarray(p)) for p in (y.real, y.imag)))
    ax = ax[0].numpy() + 1j * ax[1].numpy()
    ahy = ahy[0].numpy() + 1j * ahy[1].numpy()
    want_ax, want_ahy = ForwardOperator(cfg)(x), ImageFormation(cfg, "adjoint")(y)
    assert np.abs(ax - want_ax).max() <= 1e-4 * np.abs(want_ax).max()
    assert np.abs(ahy - want_ahy).max() <= 1e-4 * np.abs(want_ahy).max()
    lhs, rhs = np.vdot(y, ax), np.vdot(ahy, x)
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)

def test_training_path_trains_exports_and_evaluates_tiny_models(tmp_path):
    pytest.importorskip("torch")
    from cvstream.models.radar.train import train_and_export
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    losses = []
    tables = train_and_export(str(tmp_path), steps=30, configs=(str(config),), scenes=48,
                              widths={"deep2s": (4, 8), "complex": (3, 6), "unrolled": 4,
                                      "support": (4, 8)},
                              eval_scenes=3, progress=lambda d, n, loss: losses.append(loss))
    for kind in range(len(KINDS)):                         # every network learned something
        run = losses[30 * kind:30 * (kind + 1)]
        assert np.mean(run[-5:]) < np.mean(run[:5])
    rows = tables["tiny"]
    assert set(rows) == {"empty image", "adjoint", "backprojection", "kirchhoff", *KINDS}
    for kind in KINDS:
        path = tmp_path / f"radar_{kind}_tiny.onnx"
        c = read_contract(str(path))
        assert c.task == "radar_imaging" and c.evaluation[kind]["psnr_db"] == pytest.approx(
            rows[kind]["psnr_db"], abs=1e-3)
        if kind == "unrolled":   # the classical tail, chosen on validation scenes
            assert "then least squares on the voxels above 0." in c.description
            polish = c.postprocess.get("polish")   # FISTA steps, if they helped
            assert (polish is not None) == ("then FISTA-L1 from its estimate" in
                                            c.description)
            assert polish is None or polish["default"] in (25, 50, 100)
        if kind == "support":    # its prior, chosen on validation scenes
            assert "the linear MMSE estimate under it" in c.description
        block = RadarReconstruct(model=str(path))
        sweeps, _, _ = make_scenes(load_config(TINY), 3, seed=1)
        images = block.process(sweeps)
        assert images.shape == (3, 5, 4, 6) and np.allclose(images.max(axis=(1, 2, 3)), 1.0)


@pytest.mark.parametrize("kind, config", SHIPPED)
def test_shipped_model_contract_matches_its_configuration(kind, config):
    c = read_contract(resolve_model(f"builtin:radar_{kind}_{config}"))
    cfg = load_config(config)
    assert c.task == "radar_imaging" and c.chunk == 1
    assert tuple(c.inputs[0].item_shape) == cfg.sweep_shape
    assert tuple(c.outputs[0].item_shape) == cfg.image_shape
    assert load_config(c.preprocess["radar_config"]).same_as(cfg)
    assert set(c.evaluation) >= {"backprojection", "kirchhoff", kind}


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_small_models_beat_kirchhoff_on_held_out_scenes(kind):
    rows = evaluate("small", {kind: onnx_imager(
        resolve_model(f"builtin:radar_{kind}_small"))}, count=6, fista=False)
    assert rows[kind]["psnr_db"] > rows["kirchhoff"]["psnr_db"] + 3.0
    assert rows[kind]["ssim"] > rows["kirchhoff"]["ssim"]


def test_shipped_unrolled_model_generalizes_where_the_u_nets_do_not():
    """On shape families no model trained on, the operator-in-the-loop network with its
    classical tail keeps NMSE far below Deep2S's and 3 dB below FISTA-L1's after 500
    iterations, PSNR 3 dB above (issue 17's target; README table, 32 scenes: -22.3 / -2.2 /
    -16.3 dB); its FISTA steps are part of that (6 scenes: -25.5 dB with, -23.2 without);
    its contract says what its tail does."""
    from cvstream.models.radar.sparse import FistaL1
    path = resolve_model("builtin:radar_unrolled_small")
    about = read_contract(path).description
    assert "then FISTA-L1 from its estimate (100 steps, lambda 0.003" in about
    assert "then least squares on the voxels above 0.1 of the peak" in about
    imagers = {"unrolled": onnx_imager(path),
               "no FISTA steps": RadarReconstruct(model=path, polish=0, threads=2).process,
               "deep2s": onnx_imager(resolve_model("builtin:radar_deep2s_small")),
               "fista": FistaL1(load_config("small"), 0.003, 500)}  # the table's lambda
    rows = evaluate("small", imagers, count=6, shapes="unseen", fista=False)
    fista, unrolled = rows["fista"], rows["unrolled"]
    assert unrolled["nmse_db"] < rows["deep2s"]["nmse_db"] - 10.0
    assert unrolled["nmse_db"] < fista["nmse_db"] - 3.0
    assert unrolled["psnr_db"] > fista["psnr_db"] + 3.0
    assert unrolled["nmse_db"] < rows["no FISTA steps"]["nmse_db"] - 1.0
    assert unrolled["dice"] > rows["deep2s"]["dice"]


def test_shipped_support_model_beats_fista_and_the_unrolled_one_on_unseen_published_shapes():
    """`published`, shape families no model trained on: the support prior (FISTA steps,
    the network's map of where the reflectors are, the MMSE estimate under it, reweighted
    rounds on sparse scenes) keeps NMSE 3 dB below FISTA-L1's at 60 iterations (issue 17's
    margin) and far below the unrolled network's, PSNR 3 dB above; its contract says what
    its prior is. README table, 32 scenes: -6.93 dB against -1.25 (FISTA-L1, 60
    iterations), -2.19 (500) and -0.98; these 6: -9.85 against -2.78 and -1.16 (the model
    before the rounds: -4.66; on 1024 voxels before the Gram matrix: -9.61)."""
    from cvstream.models.radar.sparse import FistaL1
    path = resolve_model("builtin:radar_support_published")
    assert ("(prior p^2, noise 0.03 of the signal power; 8 FISTA steps, 512 voxels, "
            "80 CG iterations; then 3 reweighted estimates, prior x |x|^2 (256 voxels, 60 "
            "CG iterations each), kept where the map expects fewer than 200 reflector "
            "voxels)") in read_contract(path).description
    imagers = {"support": onnx_imager(path),
               "unrolled": onnx_imager(resolve_model("builtin:radar_unrolled_published")),
               "fista": FistaL1(load_config("published"), 0.03, 60)}   # the table's lambda
    rows = evaluate("published", imagers, count=6, shapes="unseen", fista=False)
    support = rows["support"]
    assert support["nmse_db"] < rows["fista"]["nmse_db"] - 3.0
    assert support["nmse_db"] < rows["unrolled"]["nmse_db"] - 5.0
    assert support["psnr_db"] > max(rows["fista"]["psnr_db"],
                                    rows["unrolled"]["psnr_db"]) + 3.0
    assert support["dice"] > rows["fista"]["dice"]


def test_shipped_support_model_beats_fista_on_unseen_small_shapes():
    """`small`, shape families no model trained on: the support prior keeps NMSE 3 dB below
    FISTA-L1's at 500 iterations (issue 17's margin, the table's lambda) and PSNR 3 dB
    above, with the first estimate's 40 conjugate-gradient iterations its contract states.
    README table, 32 scenes: -29.53 dB against -16.27; these 10: -30.38 against -17.13
    (on 6 the mean of dB is one scene's: -23.16 against -19.91)."""
    from cvstream.models.radar.sparse import FistaL1
    path = resolve_model("builtin:radar_support_small")
    assert "512 voxels, 40 CG iterations" in read_contract(path).description
    imagers = {"support": onnx_imager(path),
               "fista": FistaL1(load_config("small"), 0.003, 500)}
    rows = evaluate("small", imagers, count=10, shapes="unseen", fista=False)
    support, fista = rows["support"], rows["fista"]
    assert support["nmse_db"] < fista["nmse_db"] - 3.0
    assert support["psnr_db"] > fista["psnr_db"] + 3.0
    assert support["dice"] > 0.9   # 0.93 here, as FISTA's; 0.97 against 0.89 on 32


def test_unrolled_model_is_blind_to_the_sweeps_scale_and_global_phase(tmp_path):
    """The exported unrolled graph (operator in the loop) gives the same image for y and
    c e^{j phi} y: its steps are linear in the data and its denoisers see normalized
    magnitudes only."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.train import export
    from cvstream.models.radar.unrolled import UnrolledReconstructor
    cfg = load_config(TINY)
    torch.manual_seed(0)
    net = UnrolledReconstructor(cfg, iterations=3, width=4).eval()
    for p in net.parameters():        # leave the identity initialization
        p.data.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "u.onnx"
    assert export(cfg, "unrolled", net, str(path)).max_abs_error < 1e-3
    block = RadarReconstruct(model=str(path))
    sweeps, truth, _ = make_scenes(cfg, 3, seed=3)
    a = block.process(sweeps)
    b = block.process((sweeps * 1e3 * np.exp(0.7j)).astype(np.complex64))
    assert a.shape == truth.shape and np.abs(a - b).max() < 1e-3
    assert not np.allclose(a, a[:1])   # and it does depend on the sweep


def test_support_models_mmse_step_is_the_closed_form_and_blind_to_scale(tmp_path,
                                                                     monkeypatch):
    """The support graph's MMSE step (conjugate gradients with the Gram matrix of its
    top_k voxels) is the linear MMSE estimate W A^H (A W A^H + mu I)^-1 y solved directly
    on those voxels; the others stay zero; a reweighting round (solved on a subset of the
    first's voxels and their Gram matrix) is the same estimate under the prior times the
    first estimate's |x|^2 on the ROUND_VOXELS voxels of highest such variance among all;
    the exported graph (with a round) gives the same image for y and c e^{j phi} y."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.operators import ForwardOperator
    from cvstream.models.radar import support
    from cvstream.models.radar.support import ROUND_FLOOR, SupportReconstructor
    from cvstream.models.radar.train import export, sweep_feed
    cfg = load_config(TINY)
    torch.manual_seed(0)
    net = SupportReconstructor(cfg, (4, 8), top_k=40).eval()
    net.set_prior(2.0, 0.05, rounds=1)
    sweeps, _, _ = make_scenes(cfg, 3, seed=4)
    feed = torch.from_numpy(sweep_feed(cfg, sweeps))
    prob = torch.rand(3, cfg.n_voxels)
    monkeypatch.setattr(support, "ROUND_VOXELS", 25)
    monkeypatch.setattr(support, "ROUND_ITERATIONS", 60)   # converged on 25 voxels
    with torch.no_grad():
        y_re, y_im, _ = net.features(feed)
        first, again = (image[:, 0].numpy().reshape(3, -1)
                        for image in net.rounds_of(y_re, y_im, prob))
    # the operator's matrix, column by column, from numpy's forward model
    a = ForwardOperator(cfg)(np.eye(cfg.n_voxels, dtype=np.complex64)).reshape(
        cfg.n_voxels, -1).T

    def mmse(variance, count, y):
        keep = np.argsort(-variance)[:count]
        w, a_s = variance[keep], a[:, keep]
        mu = 0.05 * np.sum(w * np.sum(np.abs(a_s) ** 2, axis=0)) / len(y)
        x = w * (a_s.conj().T @ np.linalg.solve((a_s * w) @ a_s.conj().T + mu * np.eye(len(y)),
                                                 y))
        want = np.zeros(cfg.n_voxels)
        want[keep] = np.abs(x) / np.abs(x).max()
        return want

    for i in range(3):
        w = prob[i].numpy().astype(np.float64) ** 2
        want = mmse(w, 40, sweeps[i].ravel())
        assert np.abs(first[i] - want).max() < 2e-3
        assert np.count_nonzero(first[i] > 1e-6) <= 40
        # the round: from the graph's own first estimate (so that CG's last digits in it
        # cannot pick other voxels), the closed form again
        want = mmse(w * np.maximum(first[i], ROUND_FLOOR) ** 2, 25, sweeps[i].ravel())
        assert np.abs(again[i] - want).max() < 2e-3
        assert np.count_nonzero(again[i] > 1e-6) <= 25
        assert np.abs(again[i] - first[i]).max() > 0.05   # the round changed the image
    # the round's image only where the map expects fewer reflector voxels than the limit
    counts = prob.sum(1).numpy()
    middle = float(np.median(counts))
    for below, want in ((np.inf, again), (0.0, first),
                        (middle, np.where((counts < middle)[:, None], again, first))):
        net.set_prior(2.0, 0.05, 1, below)
        with torch.no_grad():
            got = net.reconstruct(y_re, y_im, prob)[:, 0].numpy().reshape(3, -1)
        assert np.abs(got - want).max() < 1e-5

    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "s.onnx"
    export(cfg, "support", net, str(path))
    block = RadarReconstruct(model=str(path))
    one = block.process(sweeps)
    two = block.process((sweeps * 1e3 * np.exp(0.7j)).astype(np.complex64))
    assert np.abs(one - two).max() < 1e-3 and not np.allclose(one, one[:1])


def test_fista_steps_in_the_graph_are_fistas_and_their_count_is_settable(tmp_path):
    """The unrolled graph's FISTA-L1 steps (``fista_polish``) from a zero start are numpy's
    FistaL1 iterations (same lambda and step); the exported graph runs the model's count by
    default, another when the block's ``polish`` sets one (0: none), and a model without
    them refuses the parameter."""
    torch = pytest.importorskip("torch")
    from cvstream.models.radar.sparse import FistaL1
    from cvstream.models.radar.train import export, sweep_feed
    from cvstream.models.radar.unrolled import UnrolledReconstructor, fista_polish
    cfg = load_config(TINY)
    sweeps, _, _ = make_scenes(cfg, 3, seed=5)
    fista = FistaL1(cfg, 0.03, 25)
    torch.manual_seed(0)
    net = UnrolledReconstructor(cfg, iterations=2, width=4, lip=fista.L).eval()
    ops = net.born.tables()
    back = ImageFormation(cfg, "adjoint")(sweeps)
    b = back / np.abs(back).max(axis=1, keepdims=True) * fista.L     # the graph's scale
    zero = torch.zeros(3, cfg.n_voxels)
    with torch.no_grad():
        x_re, x_im = fista_polish(zero, zero, torch.from_numpy(b.real.copy()),
                                  torch.from_numpy(b.imag.copy()), ops.p_re, ops.p_im,
                                  net.lip, torch.tensor(0.03), torch.tensor(25))
    got = np.abs(x_re.numpy() + 1j * x_im.numpy())
    want = np.abs(fista.complex_images(sweeps)) * (fista.L / np.abs(back).max(axis=1,
                                                                              keepdims=True))
    assert np.abs(want).max() > 0 and np.abs(got - want).max() < 1e-3 * np.abs(want).max()

    for p in net.parameters():        # leave the identity initialization
        p.data.add_(0.05 * torch.randn_like(p))
    net.set_polish(0.03, 6)
    path = tmp_path / "u.onnx"
    export(cfg, "unrolled", net, str(path))
    contract = read_contract(str(path))
    assert contract.postprocess["polish"] == {"input": "polish_iterations", "default": 6,
                                              "lambda": 0.03}
    assert "post      polish: {'input': 'polish_iterations', 'default': 6" in \
        contract.summary()                                   # cvstream models info
    images = {n: RadarReconstruct(model=str(path), polish=n).process(sweeps)
              for n in (-1, 0, 6, 40)}
    feed = torch.from_numpy(sweep_feed(cfg, sweeps))
    with torch.no_grad():
        for n in (0, 40):
            want = net(feed, torch.tensor(n))[:, 0].numpy()
            assert np.abs(images[n] - want).max() < 1e-3
    assert np.abs(images[-1] - images[6]).max() == 0
    assert np.abs(images[0] - images[6]).max() > 0.01 and np.abs(
        images[40] - images[6]).max() > 0.01
    with pytest.raises(ParamError, match="polish"):
        RadarReconstruct(method="deep2s", polish=10)
    assert RadarReconstruct(method="deep2s", polish=0).process(
        make_scenes("small", 1, seed=1)[0]).shape == (1, 16, 16, 32)


def test_evaluation_has_metrics_an_empty_image_cannot_win_and_a_fista_baseline():
    """On unseen shape families: the empty image scores NMSE 0 dB and Dice 0 however high
    its PSNR; FISTA with L1 and with group sparsity (lambdas chosen on validation scenes)
    beat it on NMSE and support, one row per iteration budget; least squares on FISTA's
    support (debiasing) takes NMSE down by several dB more."""
    rows = evaluate("small", {}, count=3, shapes="unseen", fista_budgets=(10, 30))
    empty = rows["empty image"]
    assert empty["nmse_db"] == 0.0 and empty["dice"] == 0.0 and empty["psnr_db"] > 15
    fista = {n.split(" (")[1].split(",")[0]: r for n, r in rows.items()
             if n.startswith("FISTA-L1 (") and "debias" not in n}
    assert set(fista) == {"10 it", "30 it"}
    assert fista["30 it"]["nmse_db"] < -2.0 and fista["30 it"]["dice"] > 0.4
    assert fista["30 it"]["nmse_db"] < fista["10 it"]["nmse_db"]
    assert fista["30 it"]["psnr_support_db"] > empty["psnr_support_db"]
    assert rows["adjoint"]["nmse_db"] > 0.0  # a blurred image is worse than none
    group = next(r for name, r in rows.items() if name.startswith("FISTA-group (30 it, "))
    assert group["nmse_db"] < -1.0 and group["psnr_support_db"] > empty["psnr_support_db"]
    debiased = next(r for n, r in rows.items() if n.startswith("FISTA-L1 (30 it) + debias ("))
    assert debiased["nmse_db"] < fista["30 it"]["nmse_db"] - 3.0


def _scene_with_phases(cfg, seed):
    """A complex reflectivity (1, N): a synthesized scene's magnitudes with random phases."""
    _, truth, _ = make_scenes(cfg, 1, seed=seed)
    rng = np.random.default_rng(seed)
    phase = np.exp(2j * np.pi * rng.random(truth.size))
    return (truth.reshape(1, -1) * phase).astype(np.complex64)


def test_least_squares_on_the_support_undoes_the_thresholds_bias():
    """Soft-thresholded amplitudes (every voxel 0.3 of the peak lower) and faint voxels
    elsewhere: conjugate gradients on the voxels above 0.1 of the peak give back the
    reflectivity (noiseless sweep), zero outside; the torch twin in the exported graph
    computes the same."""
    from cvstream.models.radar.operators import ForwardOperator, ImageFormation
    from cvstream.models.radar.sparse import refine_on_support
    cfg = load_config("small")
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    x = _scene_with_phases(cfg, 11)
    sweep = forward(x)
    mag = np.abs(x)
    shrunk = x * np.maximum(0, 1 - 0.3 * mag.max() / np.maximum(mag, 1e-30))
    support = shrunk != 0
    start = (shrunk + np.where(support, 0, 0.05 * mag.max()
                               * np.random.default_rng(1).random(x.shape))).astype(np.complex64)
    assert np.linalg.norm(start - x) > 0.2 * np.linalg.norm(x)
    got = refine_on_support(forward, adjoint, start, sweep, 0.1, 20)
    assert np.all(got[~support] == 0)
    assert np.linalg.norm(got - x * support) < 1e-2 * np.linalg.norm(x)

    torch = pytest.importorskip("torch")
    from cvstream.models.radar.network import BornTables
    from cvstream.models.radar.unrolled import refine_on_support as torch_refine
    b = adjoint(sweep)
    parts = [torch.from_numpy(np.ascontiguousarray(v)) for v in
             (start.real, start.imag, b.real, b.imag)]
    with torch.no_grad():
        t_re, t_im = torch_refine(BornTables(cfg).tables(), *parts, torch.tensor(0.1), 20)
    twin = t_re.numpy() + 1j * t_im.numpy()
    assert np.abs(twin - got).max() < 1e-3 * np.abs(x).max()


def test_group_shrink_keeps_or_drops_a_block_as_one():
    """Group sparsity's proximal step: each 2x2x2 block's joint norm less tau, its voxels
    scaled together (phases kept); the odd edge padded, not lost."""
    from cvstream.models.radar.sparse import FistaGroup
    cfg = load_config("small")
    solver = FistaGroup.__new__(FistaGroup)
    solver.cfg = cfg
    nx, ny, nz = cfg.image_shape
    u = np.zeros((1, nx, ny, nz), np.complex64)
    u[0, :2, :2, :2] = 0.1 * np.exp(1j * np.arange(8)).reshape(2, 2, 2)   # norm 0.283
    u[0, 4:6, 4:6, 4:6] = 1.0 * np.exp(-1j * np.arange(8)).reshape(2, 2, 2)   # norm 2.83
    u[0, -1, -1, -1] = 2.0                         # a block cut by the image's edge
    out = solver.shrink(u.reshape(1, -1), np.array([[0.5]])).reshape(u.shape)
    assert np.all(out[0, :2, :2, :2] == 0)
    kept = u[0, 4:6, 4:6, 4:6] * (1 - 0.5 / np.sqrt(8))
    np.testing.assert_allclose(out[0, 4:6, 4:6, 4:6], kept, rtol=1e-5)
    assert out[0, -1, -1, -1] == pytest.approx(1.5)
    assert np.count_nonzero(out) == 9


def test_evaluation_conditions_change_the_measurements_not_the_scenes():
    """Fixed SNR and displaced antennas: same targets, other sweeps; the lower the SNR,
    the worse FISTA does; a displaced array is still imaged with the nominal positions."""
    from cvstream.models.radar.evaluate import CONDITIONS, displaced
    cfg = load_config("small")
    moved = displaced(cfg, 1e-3)
    shift = np.concatenate([moved.tx - cfg.tx, moved.rx - cfg.rx])
    assert 0 < np.abs(shift).max() <= 1e-3 and np.array_equal(moved.freqs, cfg.freqs)
    assert set(CONDITIONS) >= {"", "10 dB", "40 dB", "+-1 mm"}
    nmse = {c: next(r for n, r in evaluate("small", {}, count=2, shapes="unseen",
                                           fista_budgets=(30,), condition=c).items()
                    if n.startswith("FISTA"))["nmse_db"] for c in ("10 dB", "40 dB")}
    assert nmse["10 dB"] > nmse["40 dB"]
