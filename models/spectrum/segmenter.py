"""The spectrum segmenter: a complex-valued CNN over short-time Fourier frames.

Input: a tile of ``FRAMES`` consecutive FFT frames of ``FFT`` bins (Hann window, no overlap,
DC centred, normalized frequency, so any sample rate works), each bin of each tile scaled
so that its noise has unit power (``normalize_tiles(per_bin=True)``: a quadratic in dB
across the band through the bins' low percentiles, contract normalization
``noise_floor_per_bin``).
The network treats the tile's frames as complex input channels and convolves along
frequency: a complex log-compander, a complex convolution (frames -> C channels), then
dilated complex convolutions (1, 2, 4, 8) with modReLU and residual connections; the head
reads log magnitudes and gives, per bin, one presence logit and one logit per modulation
family. One tile is one time-frequency cell row: FFT * FRAMES samples (8192) by one bin.
32 frames a tile rather than 16 halve the network's work per sample (its convolutions
run once per tile), for 0.03 less detection F1 at 10..20 dB and 0.02 more at 0..10 and
20..30 dB (README): the ZeroMQ graph keeps up with 20 Msps beside a GNU Radio sender on
two cores.
``ablation`` trains the CReLU, mixed and narrower variants beside it (the README's table).

The real-valued twin takes the same tile as 2 x FRAMES real channels (real and imaginary
parts) and has the same real parameter count (widths chosen by ``real_width_for``).

    cvstream models train spectrum_segmenter [--steps N] [--seed 0]
    cvstream models eval spectrum
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvstream.blocks.tile_spectra import (  # the block's preprocessing
    COMPAND, normalize_tiles, unit_hann)

from .synth import SceneConfig, cell_labels, scene
from .waveforms import CLASSES

NAME = "spectrum_segmenter"
FFT, FRAMES = 256, 32
TILE = FFT * FRAMES
WIDTH = 12
ACTIVATION = "modrelu"
#: the tiles' scaling (contract ``normalization``): a noise floor per bin, fitted across the
#: band, so a floor tilted by a receiver's filters reaches the network flat (the block also
#: serves ``noise_floor``, one scale per tile, as earlier models were trained)
NORMALIZATION = "noise_floor_per_bin"
#: the shipped segmenters (file name, row label in the evaluation table)
SEGMENTERS = ((NAME, "segmenter"), (NAME + "_real", "real twin"))


def stft_tiles(x: np.ndarray) -> np.ndarray:
    """(tiles, FRAMES, FFT) complex64 Hann-windowed, DC-centred spectra of x (whole tiles)."""
    n = len(x) // TILE * TILE
    frames = x[:n].reshape(-1, FFT) * unit_hann(FFT)
    spec = np.fft.fftshift(np.fft.fft(frames, axis=1), axes=1).astype(np.complex64)
    return spec.reshape(-1, FRAMES, FFT)


def tile_labels(labels, n: int) -> np.ndarray:
    """(tiles, FFT) class per cell (0 noise, 1 + CLASSES index): the class covering most of
    the tile's frames in that bin, if signals cover at least half of them."""
    grid = cell_labels(labels, n // TILE * TILE, FFT, FFT)  # (frames, FFT)
    grid = grid[: len(grid) // FRAMES * FRAMES].reshape(-1, FRAMES, FFT)
    counts = np.stack([(grid == c).sum(axis=1) for c in range(len(CLASSES) + 1)], axis=1)
    best = counts[:, 1:].argmax(axis=1) + 1
    occupied = counts[:, 1:].sum(axis=1) >= FRAMES // 2
    return np.where(occupied, best, 0)


def build(width: int = WIDTH, activation: str = ACTIVATION, frames: int = FRAMES):
    """forward(inp (B, frames, FFT, 2)) -> logits (B, 1, 1 + classes, FFT).

    ``activation``: "modrelu" (phase-preserving, after every convolution), "crelu" (ReLU on
    real and imaginary parts, fused into ONNX Runtime's convolutions) or "mixed" (modReLU
    after the first convolution, CReLU after the others). The head reads the log
    magnitudes of the last complex features."""
    import torch
    from torch import nn

    from ..nn import CReLU, ComplexConv, LogCompander, ModReLU
    from ..nn.layout import planes
    if activation not in ("crelu", "modrelu", "mixed"):
        raise ValueError("activation is 'crelu', 'modrelu' or 'mixed'")

    def act(first: bool):
        modrelu = activation == "modrelu" or (activation == "mixed" and first)
        return ModReLU(width, length=FFT) if modrelu else CReLU()

    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.compand = LogCompander()
            self.first = ComplexConv(frames, width, 3, dims=1)
            self.act0 = act(True)
            self.convs = nn.ModuleList(ComplexConv(width, width, 3, dims=1, dilation=d)
                                       for d in (1, 2, 4, 8))
            self.acts = nn.ModuleList(act(False) for _ in range(4))
            self.head = nn.Conv1d(width, 1 + len(CLASSES), 1)

        def forward(self, inp, compand: bool = True):
            # (B, T, F, 2) -> split layout (B, 2T, F): frames are the complex channels
            x = inp.permute(0, 3, 1, 2).reshape(inp.shape[0], 2 * frames, FFT)
            x = self.compand(x) if compand else x   # (``deployed``: the block's)
            h = self.act0(self.first(x))
            for conv, a in zip(self.convs, self.acts):
                h = h + a(conv(h))
            if torch.onnx.is_in_onnx_export():   # (the same numbers: ModReLU's ``length``)
                z = planes(h, width, FFT)
                power = (z * z).sum(1)
            else:
                re, im = h[:, :width], h[:, width:]
                power = re * re + im * im
            return self.head(torch.log1p(torch.sqrt(power + 1e-8))).unsqueeze(1)

    torch.manual_seed(0)
    return Segmenter()


def build_real(width: int):
    """The real-valued twin: the same tile as 2 x FRAMES real channels, real convolutions."""
    import torch
    from torch import nn

    class RealSegmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Conv1d(2 * FRAMES, width, 3, padding=1)
            self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, padding=d, dilation=d)
                                       for d in (1, 2, 4, 8))
            self.head = nn.Conv1d(width, 1 + len(CLASSES), 1)

        def forward(self, inp, compand: bool = True):
            if compand:   # the same companding as the complex model (``deployed``)
                mag = torch.sqrt((inp * inp).sum(-1, keepdim=True) + 1e-8)
                inp = inp * torch.log1p(mag) / mag
            x = inp.permute(0, 3, 1, 2).reshape(inp.shape[0], 2 * FRAMES, FFT)
            h = torch.relu(self.first(x))
            for conv in self.convs:
                h = h + torch.relu(conv(h))
            return self.head(h).unsqueeze(1)

    torch.manual_seed(0)
    return RealSegmenter()


def deployed(model):
    """A trained segmenter (or twin) as it is exported: its input companded by the block
    (contract ``preprocess.compand``, ``tile_spectra.compand``), not in the graph, where
    the compander's passes over the split parts took a fifth of ONNX Runtime's time."""
    from torch import nn

    class Deployed(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, inp):
            return self.net(inp, compand=False)
    return Deployed()


def real_twin_width() -> int:
    from ..nn import count_real_params, real_width_for
    return real_width_for(build_real, count_real_params(build()))


def contract(name: str = NAME, evaluation: dict | None = None, real: bool = False,
             frames: int = FRAMES) -> dict:
    return dict(task="spectrum_segmentation", name=name, version="1", chunk=frames,
                out_items=1, sample_rate="normalized", normalization=NORMALIZATION,
                inputs=[dict(name="frames", dtype="complex64", item_shape=[FFT])],
                outputs=[dict(name="logits", dtype="float32",
                              item_shape=[1 + len(CLASSES), FFT], packing="none")],
                class_names=["noise"] + CLASSES,
                preprocess={"stft": {"fft": FFT, "hop": FFT, "window": "hann",
                                     "frames": frames, "shift": True}, "compand": COMPAND},
                description=("real-valued twin of the " if real else "") +
                "complex CNN over STFT tiles: presence and modulation family per cell",
                evaluation=evaluation or {})


def batch(rng, scenes: int, samples: int = 65536, variety: bool = False):
    """Training tiles (normalised like the block does) and their cell labels, from the
    fixed synthesizer's scenes or, with ``variety``, every other scene randomized."""
    xs, ys = [], []
    for k in range(scenes):
        x, labels = scene(rng, SceneConfig(samples=samples, variety=variety and k % 2 == 1))
        xs.append(normalize_tiles(stft_tiles(x), per_bin=NORMALIZATION == "noise_floor_per_bin"
                                  ).astype(np.complex64))
        ys.append(tile_labels(labels, len(x)))
    x = np.concatenate(xs)
    return x.view(np.float32).reshape(*x.shape, 2), np.concatenate(ys)


def train(steps: int = 2500, seed: int = 0, scenes_per_step: int = 8, real: bool = False,
          progress=None, activation: str = ACTIVATION, width: int = WIDTH,
          variety: bool = False):
    """The segmenter (or its real twin) from ``seed``, on the fixed synthesizer's scenes or,
    with ``variety``, every other scene randomized: at this width and step count that lost
    weak signals (README: detection F1 0.35 against 0.61 at 0..10 dB on the project's
    scenes, 0.35 against 0.44 on a GNU Radio tuning set), so the shipped model keeps the
    former."""
    import torch
    import torch.nn.functional as F
    from ..training import optimizer_step
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = build_real(real_twin_width()) if real else build(width, activation)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for step in range(steps):
        x, y = batch(rng, scenes_per_step, variety=variety)
        logits = model(torch.from_numpy(x))[:, 0]          # (B, 1 + K, F)
        target = torch.from_numpy(y)
        present = (target > 0).float()
        loss = 2.0 * F.binary_cross_entropy_with_logits(logits[:, 0], present)
        if present.any():
            mask = target > 0
            cls = logits[:, 1:].permute(0, 2, 1)[mask]
            loss = loss + F.cross_entropy(cls, target[mask] - 1)
        optimizer_step(model, opt, sched, loss, step, steps, progress)
    return model.eval()


def detector(path: str, **params):
    """A detect(x) -> [Box] for the evaluation, running the spectrum_segmenter block; its
    parameters are checked here (a ``CvstreamError`` naming the one refused), not on the
    first recording."""
    from cvstream.blocks.segmenter import SpectrumSegmenter

    from .evaluate import boxes_from_messages
    SpectrumSegmenter(**{"model": path, **params}).check()

    def detect(x):
        block = SpectrumSegmenter(**{"model": path, **params})
        block.process(x)
        block.flush()
        return boxes_from_messages(block.take_messages())
    return detect


def _yaml_text(value) -> str:
    """A parameter's value as a graph's YAML writes it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def detectors(model_dir: str, narrow: bool = False, variants: Sequence[dict] = ()) -> dict:
    """The detectors of the evaluation tables: the directory's segmenter and its real twin
    (labels from the directory's family classifier, or the shipped one) and CFAR; with
    ``narrow`` also the segmenter with its fine view for narrow signals (``narrow: true``),
    and one more for each of ``variants`` (block parameters; refused, naming the variant,
    where the block refuses them)."""
    import os

    from cvstream.errors import CvstreamError

    from .evaluate import cfar_detect
    found = {}
    family = os.path.join(model_dir, "spectrum_family.onnx")  # the directory's own, if any
    extra = {"family": family} if os.path.exists(family) else {}
    for name, label in SEGMENTERS:
        path = os.path.join(model_dir, name + ".onnx")
        if not os.path.exists(path):
            continue
        found[label] = detector(path, **extra)
        if name != NAME:
            continue
        if narrow:   # with the fine view for narrow signals
            found[label + " + narrow"] = detector(path, **extra, narrow=True)
        for params in variants:
            row = f"{label} ({', '.join(f'{k}: {_yaml_text(v)}' for k, v in params.items())})"
            try:
                found[row] = detector(path, **{**extra, **params})
            except CvstreamError as exc:
                raise CvstreamError(f"--variant {row}: {exc}") from None
    found["cfar"] = cfar_detect()
    return found


def evaluate_all(model_dir: str, scenes_per_bucket: int = 32, progress=None) -> dict:
    """The README table: segmenter, real twin and CFAR on the same held-out scenes."""
    from .evaluate import evaluate
    return evaluate(detectors(model_dir), scenes_per_bucket=scenes_per_bucket,
                    progress=progress)


VARIANTS = (("modrelu", 12), ("modrelu", 10), ("modrelu", 8), ("crelu", 12), ("mixed", 12))


def ablation(out_dir: str, variants=VARIANTS,
             steps: int = 2500, seed: int = 0, scenes_per_bucket: int = 32) -> dict:
    """The ablation of activation and width: the complex segmenter trained from ``seed``
    with each (activation, width) at FRAMES frames a tile, exported to ``out_dir``,
    evaluated on the held-out scenes of ``cvstream models eval spectrum`` (CFAR alongside).
    The README's table was measured at 16 frames (this function at commit 2be6f91)."""
    import os

    from ..export import export_model
    from .evaluate import cfar_detect, evaluate
    detectors = {}
    for activation, width in variants:
        name = f"{activation} w{width}"
        path = os.path.join(out_dir, f"{activation}_w{width}.onnx")
        export_model(deployed(train(steps, seed, activation=activation, width=width)),
                     contract(), path)
        detectors[name] = detector(path)
    detectors["cfar"] = cfar_detect()
    return evaluate(detectors, scenes_per_bucket=scenes_per_bucket)


def train_and_export(out_dir: str, steps: int = 2500, seed: int = 0, progress=None,
                     scenes_per_bucket: int = 32) -> dict:
    """Train the segmenter and its real twin from ``seed``, export both to ``out_dir``,
    train the family classifier on the segmenter's detections, evaluate both segmenters
    against CFAR and store each one's rows in its contract."""
    import os

    from ..export import export_model
    for real in (False, True):
        name = NAME + ("_real" if real else "")
        export_model(deployed(train(steps, seed, real=real, progress=progress)),
                     contract(name, real=real), os.path.join(out_dir, name + ".onnx"))
    # the family classifier learns from this segmenter's detections
    from . import family
    family.train_and_export(out_dir, seed, progress, store=False)
    return store_evaluation(out_dir, scenes_per_bucket, progress)


def store_evaluation(model_dir: str, scenes_per_bucket: int = 32, progress=None) -> dict:
    """Evaluate the directory's segmenters (labelled by its family classifier) against CFAR
    and store each one's rows in its contract, weights untouched; returns the table."""
    import os

    from cvstream.contract import read_contract

    from ..export import rewrite_contract
    table = evaluate_all(model_dir, scenes_per_bucket, progress)
    for name, label in SEGMENTERS:
        path = os.path.join(model_dir, name + ".onnx")
        if not os.path.exists(path):
            continue
        c = read_contract(path)
        c.evaluation = {bucket: {k: (round(v, 4) if isinstance(v, float) else v)
                                 for k, v in rows[label].items()}
                        for bucket, rows in table.items()}
        rewrite_contract(path, c)
    return table


from .evaluate import format_table  # noqa: E402,F401
