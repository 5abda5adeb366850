"""Train, export and evaluate the radar reconstruction models (torch).

``cvstream models train radar`` trains Deep2S, the complex variant, the unrolled network and
the support network for both shipped configurations from a seed, exports
``radar_<kind>_<config>.onnx`` (sweep in, image out), evaluates them next to back-projection
and Kirchhoff migration, and stores each model's rows in its contract. Deep2S and the
complex variant learn from adjoint images computed once by numpy (the first shape families);
the unrolled network learns from the sweeps themselves (the operator is in its graph), on
the wider families and phase models at 10-40 dB; its debiasing step (least squares on its
support) is then chosen on validation scenes. The support network's U-Net learns the truth's
support from features its physics computes once (the same scenes), and its prior's exponent
and noise are then chosen on validation scenes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .evaluate import VALID_SEED, evaluate, format_table, nmse_db, onnx_imager
from .geometry import load_config
from .operators import ImageFormation
from .sparse import REFINE_ITERATIONS, SUPPORTS
from .synth import PHASES, TRAIN_SHAPES, SceneConfig, make_scenes

NAME = "radar"
KINDS = ("deep2s", "complex", "unrolled", "support")
#: real widths for Deep2S; complex widths matched to its real parameter count; the unrolled
#: network's denoiser width; the support network's U-Net
WIDTHS = {"deep2s": (16, 32, 64), "complex": (11, 22, 45), "unrolled": 8,
          "support": (16, 32, 64)}
#: the unrolled network's scenes: every training family and phase model, 10-40 dB
UNROLLED_SCENES = SceneConfig(shapes=TRAIN_SHAPES, phases=PHASES, snr_db=(10.0, 40.0))
#: loss = MSE + L1_WEIGHT * L1 on the peak-normalized image (the L1 term favours empty voxels)
L1_WEIGHT = 0.1
#: ONNX Runtime vs torch: the adjoint sums K T R products in float32 in a different order
EXPORT_TOL = 2e-3
#: ... and an unrolled network's classical tail (FISTA steps, a support threshold) can move
#: a voxel across a threshold: relative L2 error of the image
REFINED_EXPORT_TOL = 1e-2
#: ... and the support network's reweighting rounds carry float32's differences from one
#: round's voxel choice to the next (`published`, 3 rounds on every scene: 1.7e-2
#: relative median, 7e-2 at most; ONNX Runtime's and torch's mean validation NMSE agree
#: to 0.01 dB)
ROUNDS_EXPORT_TOL = 3e-2


@dataclass
class Recipe:
    scenes: int      # training scenes (synthesized once)
    steps: int       # optimizer steps, the same for both kinds
    batch: int
    lr: float = 2e-3


RECIPES = {"small": Recipe(scenes=2048, steps=1500, batch=8),
           "published": Recipe(scenes=1536, steps=1500, batch=4)}
#: the unrolled network costs an operator pair per iteration: fewer, smaller steps
UNROLLED_RECIPES = {"small": Recipe(scenes=2048, steps=800, batch=4, lr=2e-3),
                    "published": Recipe(scenes=768, steps=800, batch=2, lr=2e-3)}
#: gradient steps (each followed by its own denoiser) per configuration
ITERATIONS = {"small": 12, "published": 6}
#: the support network learns from features computed once (its physics has no weights);
#: `published` from four times the scenes (its map generalizes with data: -3.02 dB NMSE on
#: the unseen families at 1536 scenes and 3000 steps, -3.88 at these; twice these again,
#: 12288 scenes and 14000 steps, gave -3.62 on the validation scenes against -3.70 and
#: -3.84 on the unseen families, in 58 minutes with the cores partly shared)
SUPPORT_RECIPES = {"small": Recipe(scenes=2048, steps=3000, batch=4),
                   "published": Recipe(scenes=6144, steps=10000, batch=4)}
#: its prior's exponent and noise level (a fraction of the mean signal power) tried
PRIOR_GAMMAS = (1.0, 2.0, 3.0)
PRIOR_NOISE = (0.01, 0.03, 0.1)
#: ... its reweighting rounds tried (0 to this), each kept only if it gains this much (a
#: `published` round costs about 60 ms a frame on 2 cores, ONNX Runtime)
PRIOR_ROUNDS = 3
ROUND_MARGIN_DB = 0.2
#: ... and where they apply: scenes whose map expects fewer reflector voxels than this
SPARSE_BELOW = (50.0, 100.0, 200.0, 400.0, math.inf)
#: its loss: binary cross-entropy with a reflector's voxels weighted this much more
SUPPORT_POS_WEIGHT = 2.0
#: FISTA-L1 after the unrolled network's learned steps (``choose_refinement``): lambdas and
#: step counts tried (other configurations: small's). Each step costs an operator pair
#: (`small`: ~1 ms a frame, `published` ~10: none there, its images on validation scenes
#: got no better even after 400, and it has a 10 fps target); the count is the exported
#: graph's input POLISH_INPUT, settable per run
POLISH_LAMBDAS = (0.003, 0.01, 0.03)
POLISH_ITERATIONS = {"small": (25, 50, 100), "published": ()}
POLISH_INPUT = "polish_iterations"
#: a classical tail costs time: it is kept only if it beats the network alone by this much
TAIL_MARGIN_DB = 0.5
#: the unrolled network's scalars (steps, momenta, thresholds) learn this much faster than
#: its CNN weights
SCALAR_LR = 5.0


def sweep_feed(cfg, sweeps: np.ndarray):
    """(n, K, T, R) complex64 sweeps -> the graphs' input layout, (n, 1, K, T, R, 2) float32
    (a view)."""
    return np.ascontiguousarray(sweeps, np.complex64).view(np.float32).reshape(
        len(sweeps), 1, *cfg.sweep_shape, 2)


def model_name(kind: str, config: str) -> str:
    return f"radar_{kind}_{config}"


def contract(cfg, kind: str, evaluation: dict | None = None, net=None) -> dict:
    k, t, r = cfg.sweep_shape
    about = {"support": "support prior: FISTA-L1 steps with the exact Born operator -> a 3D "
                        "U-Net's map of each voxel's prior -> the linear MMSE estimate "
                        "under it (conjugate gradients with the Gram matrix of the "
                        "exact operator's columns)",
             "deep2s": "Deep2S: adjoint -> magnitude -> 3D U-Net",
             "complex": "complex variant: adjoint -> complex 3D U-Net -> magnitude",
             "unrolled": "unrolled: gradient steps with the exact Born operator, each "
                         "followed by a learned phase-keeping 3D denoiser"}[kind]
    post = {}
    if kind == "unrolled" and net is not None and int(net.polish_iterations):
        about += (f", then FISTA-L1 from its estimate ({int(net.polish_iterations)} steps, "
                  f"lambda {float(net.polish_lam):g} of the data image's peak)")
        post["polish"] = {"input": POLISH_INPUT, "default": int(net.polish_iterations),
                          "lambda": round(float(net.polish_lam), 6)}
    if kind == "support" and net is not None:
        from .support import ROUND_ITERATIONS, ROUND_VOXELS
        about += (f" (prior p^{float(net.gamma):g}, noise {float(net.noise):g} of the signal "
                  f"power; {net.steps} FISTA steps, {net.top_k} voxels, "
                  f"{net.cg_iterations} CG iterations"
                  + (f"; then {int(net.rounds)} reweighted estimates, prior x |x|^2 "
                     f"({ROUND_VOXELS} voxels, {ROUND_ITERATIONS} CG iterations each), "
                     f"kept where the map expects fewer than {float(net.sparse_below):g} "
                     "reflector voxels" if int(net.rounds) else "") + ")")
    if kind == "unrolled" and net is not None and net.refine:
        about += (f", then least squares on the voxels above {float(net.support):g} of the "
                  f"peak ({net.refine} conjugate-gradient iterations)")
    return dict(task="radar_imaging", name=model_name(kind, cfg.name), version="1", chunk=1,
                inputs=[dict(name="sweep", dtype="complex64", item_shape=[k, t, r])],
                outputs=[dict(name="image", dtype="float32", item_shape=list(cfg.image_shape),
                              packing="none")],
                sample_rate="normalized", preprocess={"radar_config": cfg.to_dict()},
                postprocess=post,
                description=f"{about} ({cfg.describe()}); image normalized to max 1",
                evaluation=evaluation or {})


def image_loss(out, target):
    """MSE + L1_WEIGHT * L1 between the peak-normalized output and the truth."""
    import torch
    peak = out.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, *([1] * (out.dim() - 1)))
    err = out / peak - target
    return torch.mean(err ** 2) + L1_WEIGHT * torch.mean(torch.abs(err))


def nmse_loss(out, target):
    """Mean over the batch of ||out - truth||^2 / ||truth||^2 (the evaluation's NMSE, not
    in dB): every scene counts the same, however many voxels its targets fill."""
    err = (out - target).flatten(1).pow(2).sum(dim=1)
    return (err / target.flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)).mean()


def train_unrolled(cfg, recipe: Recipe, seed: int, width=None, progress=None,
                   iterations: int | None = None):
    """Train the unrolled network on sweeps of freshly synthesized scenes; returns it."""
    import torch

    from ..training import optimizer_step
    from .unrolled import UnrolledReconstructor
    torch.manual_seed(seed)
    sweeps, truth, _ = make_scenes(cfg, recipe.scenes, seed, UNROLLED_SCENES)
    feed = torch.from_numpy(sweep_feed(cfg, sweeps))
    target = torch.from_numpy(truth)[:, None]
    net = UnrolledReconstructor(cfg, iterations or ITERATIONS.get(cfg.name, 10),
                                width or WIDTHS["unrolled"])
    named = dict(net.named_parameters())
    scalars = [n for n in named if n.split(".")[-1] in ("log_eta", "mu", "tau")]
    groups = [{"params": [named[n] for n in scalars], "lr": SCALAR_LR * recipe.lr},
              {"params": [p for n, p in named.items() if n not in scalars], "lr": recipe.lr}]
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups],
                                                total_steps=recipe.steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    net.train()
    for step in range(recipe.steps):
        idx = torch.from_numpy(rng.integers(0, len(target), recipe.batch))
        loss = nmse_loss(net(feed[idx]), target[idx])
        optimizer_step(net, opt, sched, loss, step, recipe.steps, progress, clip=1.0)
    choose_refinement(net.eval(), cfg)
    return net


def train_support(cfg, recipe: Recipe, seed: int, widths=None, progress=None):
    """Train the support network on the unrolled network's scenes: features (|A^H y|,
    |x_K|) computed once, the U-Net by binary cross-entropy against the truth's support,
    each batch turned by one of the array's symmetries (``RadarConfig.symmetries``);
    then its prior's exponent and noise are chosen (``choose_prior``). Returns it."""
    import torch
    import torch.nn.functional as F

    from cvstream.progress import progress_printer

    from ..training import optimizer_step
    from .support import SupportReconstructor
    torch.manual_seed(seed)
    sweeps, truth, _ = make_scenes(cfg, recipe.scenes, seed, UNROLLED_SCENES,
                                   progress=progress_printer("synthesizing scenes"))
    net = SupportReconstructor(cfg, widths or WIDTHS["support"])
    feats = support_features(net, cfg, sweeps, progress=progress_printer("their features"))
    target = torch.from_numpy((truth > 0).astype(np.float32))
    opt = torch.optim.Adam(net.net.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps,
                                                pct_start=0.1)
    rng = np.random.default_rng(seed)
    weight = torch.tensor(SUPPORT_POS_WEIGHT)
    moves = cfg.symmetries()
    net.train()
    for step in range(recipe.steps):
        idx = torch.from_numpy(rng.integers(0, len(target), recipe.batch))
        x, y = feats[idx], target[idx]
        # each batch turned by a random element of the array's symmetry group: the same
        # physics, shapes in orientations the scenes did not draw
        if "transpose" in moves and rng.random() < 0.5:
            x, y = x.transpose(-3, -2), y.transpose(-3, -2)
        if "turn" in moves and rng.random() < 0.5:
            x, y = x.flip(-3, -2), y.flip(-3, -2)
        loss = F.binary_cross_entropy_with_logits(net.net(x.contiguous())[:, 0],
                                                  y.contiguous(), pos_weight=weight)
        optimizer_step(net.net, opt, sched, loss, step, recipe.steps, progress)
    choose_prior(net.eval(), cfg)
    return net


def support_features(net, cfg, sweeps: np.ndarray, batch: int = 32, progress=None):
    """The support network's inputs for ``sweeps`` (n, K, T, R): (n, 2, nx, ny, nz)."""
    import torch
    out = []
    with torch.no_grad():
        for start in range(0, len(sweeps), batch):
            feed = torch.from_numpy(sweep_feed(cfg, sweeps[start:start + batch]))
            out.append(net.features(feed)[2])
            if progress is not None:
                progress(min(start + batch, len(sweeps)), len(sweeps))
    return torch.cat(out)


def choose_prior(net, cfg, validation: int = 32) -> dict:
    """Sets the support network's prior exponent, noise, reweighting rounds and the map's
    sparsity below which they apply (PRIOR_GAMMAS x PRIOR_NOISE x 0..PRIOR_ROUNDS x
    SPARSE_BELOW) to the best mean NMSE on ``validation`` scenes drawn as its training's
    (seed VALID_SEED), a round kept only if it gains ROUND_MARGIN_DB; returns {(gamma,
    noise, rounds, sparse_below): mean NMSE dB}."""
    import torch
    sweeps, truth, _ = make_scenes(cfg, validation, VALID_SEED, UNROLLED_SCENES)
    scores: dict = {}
    with torch.no_grad():
        for start in range(0, validation, 8):
            feed = torch.from_numpy(sweep_feed(cfg, sweeps[start:start + 8]))
            y_re, y_im, feats = net.features(feed)
            prob = torch.sigmoid(net.net(feats)).flatten(1)
            for gamma in PRIOR_GAMMAS:
                for noise in PRIOR_NOISE:
                    net.set_prior(gamma, noise, PRIOR_ROUNDS)
                    images = net.rounds_of(y_re, y_im, prob)
                    for rounds, image in enumerate(images):
                        for below in SPARSE_BELOW if rounds else (math.inf,):
                            net.set_prior(gamma, noise, rounds, below)
                            got = torch.where(net.sparse(prob), image, images[0])
                            scores.setdefault((gamma, noise, rounds, below), []).extend(
                                nmse_db(i, t) for i, t in zip(got[:, 0].numpy(),
                                                              truth[start:start + 8]))
    means = {key: float(np.mean(v)) for key, v in scores.items()}

    def one_round_fewer(key):   # no rounds have no limit
        gamma, noise, rounds, below = key
        return gamma, noise, rounds - 1, below if rounds > 1 else math.inf

    best = min(means, key=means.get)
    while best[2] and means[one_round_fewer(best)] <= means[best] + ROUND_MARGIN_DB:
        best = one_round_fewer(best)
    net.set_prior(*best)
    print(f"prior (exponent, noise, rounds, sparse below) on {validation} validation scenes: "
          + ", ".join(f"{k[0]:g}/{k[1]:g}/{k[2]}/{k[3]:g}: {v:.2f} dB"
                      for k, v in sorted(means.items(), key=lambda kv: kv[1])[:4])
          + f" -> {best}", flush=True)
    return means


def choose_refinement(net, cfg, validation: int = 32) -> dict:
    """Sets the unrolled network's classical tail to the one with the best mean NMSE on
    ``validation`` scenes of the training's first families (seed VALID_SEED, as FISTA's
    lambda): FISTA-L1 steps after the learned ones (a lambda of POLISH_LAMBDAS and a count
    of POLISH_ITERATIONS for the configuration, or none) and the debiasing step
    (REFINE_ITERATIONS conjugate-gradient iterations on the voxels above a threshold of
    SUPPORTS, or none), unless the network alone comes within TAIL_MARGIN_DB of the best;
    returns {(lambda, count, threshold or None): mean NMSE dB}."""
    import torch
    sweeps, truth, _ = make_scenes(cfg, validation, VALID_SEED)
    feed = torch.from_numpy(sweep_feed(cfg, sweeps))
    tails = [(0.0, 0)] + [(lam, count) for lam in POLISH_LAMBDAS
                          for count in POLISH_ITERATIONS.get(cfg.name,
                                                             POLISH_ITERATIONS["small"])]
    scores: dict = {}
    for start in range(0, len(feed), 8):
        with torch.no_grad():
            ops, x_re, x_im, b_re, b_im = net.estimate(feed[start:start + 8])
            for lam, count in tails:   # each FISTA run once, then every support on it
                p_re, p_im = (net.polish(ops, x_re, x_im, b_re, b_im, torch.tensor(lam),
                                         torch.tensor(count)) if count else (x_re, x_im))
                for support in (None, *SUPPORTS):
                    images = net.finish(ops, p_re, p_im, b_re, b_im,
                                        None if support is None else torch.tensor(support))
                    scores.setdefault((lam, count, support), []).extend(
                        nmse_db(i, t) for i, t in zip(images[:, 0].numpy(),
                                                      truth[start:start + 8]))
    means = {key: float(np.mean(v)) for key, v in scores.items()}
    best = min(means, key=means.get)
    if means[(0.0, 0, None)] <= means[best] + TAIL_MARGIN_DB:
        best = (0.0, 0, None)
    lam, count, support = best
    net.set_polish(lam, count)
    net.set_refinement(support, REFINE_ITERATIONS)
    print("classical tail (FISTA-L1 lambda, steps, debiasing support) on "
          f"{validation} validation scenes: " + ", ".join(
              f"{k[0]:g}/{k[1]}/{'off' if k[2] is None else k[2]}: {v:.2f} dB"
              for k, v in sorted(means.items(), key=lambda kv: kv[1])[:5])
          + f" ... network alone {means[(0.0, 0, None)]:.2f} dB -> {best}", flush=True)
    return means


def train_network(cfg, kind: str, recipe: Recipe, seed: int, widths=None, progress=None):
    """Train one network on adjoint images of freshly synthesized scenes; returns it."""
    import torch
    if kind == "unrolled":
        return train_unrolled(cfg, recipe, seed, widths, progress)
    if kind == "support":
        return train_support(cfg, recipe, seed, widths, progress)

    from ..training import optimizer_step
    from .network import make_network, network_input
    torch.manual_seed(seed)
    sweeps, truth, _ = make_scenes(cfg, recipe.scenes, seed)
    adj = ImageFormation(cfg, "adjoint")(sweeps).reshape(len(sweeps), *cfg.image_shape)
    x_re, x_im = torch.from_numpy(adj.real.copy()), torch.from_numpy(adj.imag.copy())
    target = torch.from_numpy(truth)
    net = make_network(kind, widths or WIDTHS[kind])
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps,
                                                pct_start=0.1)
    rng = np.random.default_rng(seed)
    net.train()
    for step in range(recipe.steps):
        idx = torch.from_numpy(rng.integers(0, len(target), recipe.batch))
        loss = image_loss(net(network_input(kind, x_re[idx], x_im[idx]))[:, 0], target[idx])
        optimizer_step(net, opt, sched, loss, step, recipe.steps, progress)
    return net.eval()


def export_forward(config, path: str):
    """Export the Born forward operator alone (reflectivity in, sweep out) as an ONNX model
    that ``onnx_model`` runs: a scene simulator inside a flow graph."""
    from ..export import export_model
    from .network import ForwardLayer
    cfg = load_config(config)
    spec = dict(task="radar_forward", name=f"radar_forward_{cfg.name}", version="1", chunk=1,
                inputs=[dict(name="reflectivity", dtype="complex64",
                             item_shape=list(cfg.image_shape))],
                outputs=[dict(name="sweep", dtype="complex64", item_shape=list(cfg.sweep_shape))],
                sample_rate="normalized", preprocess={"radar_config": cfg.to_dict()},
                description=f"Born forward model ({cfg.describe()})")
    return export_model(ForwardLayer(cfg), spec, path, tol=EXPORT_TOL, constant_folding=False)


def export(cfg, kind: str, net, path: str, evaluation: dict | None = None):
    from ..export import export_model
    from .network import Reconstructor
    graph = net if kind in ("unrolled", "support") else Reconstructor(cfg, kind, net)
    test = None
    if kind == "support" or (kind == "unrolled" and (net.refine or int(net.polish_iterations))):
        # thresholds that depend on the image: compare on scenes
        sweeps, _, _ = make_scenes(cfg, 3, VALID_SEED + 1)
        test = [sweep_feed(cfg, sweeps)]
    settings = ({POLISH_INPUT: net.polish_iterations.numpy().copy()}
                if kind == "unrolled" and int(net.polish_iterations) else None)
    return export_model(graph, contract(cfg, kind, evaluation, net), path, tol=EXPORT_TOL,
                        rel_tol=(ROUNDS_EXPORT_TOL if kind == "support" and int(net.rounds)
                                 else REFINED_EXPORT_TOL if test else None),
                        constant_folding=False, test_inputs=test, settings=settings)


def train_and_export(out_dir: str, steps: int | None = None, seed: int = 0, progress=None,
                     configs=("small", "published"), kinds=KINDS, widths=None,
                     scenes: int | None = None, eval_scenes: int = 32) -> dict:
    """Train every (config, kind) pair, export to ``out_dir``, evaluate, and store the rows in
    the contracts. ``steps``/``scenes``/``widths`` override the recipes (tests train tiny
    networks). Returns {config: rows}."""
    tables = {}
    for config in configs:
        cfg = load_config(config)
        nets, imagers = {}, {}
        for kind in kinds:
            book = {"unrolled": UNROLLED_RECIPES, "support": SUPPORT_RECIPES}.get(kind,
                                                                                  RECIPES)
            base = book.get(cfg.name, book["small"])
            recipe = Recipe(scenes or base.scenes, steps or base.steps, base.batch, base.lr)
            print(f"training {model_name(kind, cfg.name)}: {recipe.steps} steps, "
                  f"{recipe.scenes} scenes", flush=True)
            nets[kind] = train_network(cfg, kind, recipe, seed, widths and widths[kind],
                                       progress)
            path = os.path.join(out_dir, model_name(kind, cfg.name) + ".onnx")
            print(export(cfg, kind, nets[kind], path))
            imagers[kind] = onnx_imager(path)
        # the contract keeps the rows of the training's shape families (FISTA, slower, is
        # in `cvstream models eval radar`)
        tables[cfg.name] = evaluate(cfg, imagers, eval_scenes, fista=False)
        for kind, net in nets.items():
            rows = {m: {k: round(v, 3) for k, v in r.items()}
                    for m, r in tables[cfg.name].items()}
            export(cfg, kind, net, os.path.join(out_dir, model_name(kind, cfg.name) + ".onnx"),
                   rows)
    return tables


__all__ = ["NAME", "train_and_export", "format_table"]
