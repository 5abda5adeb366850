"""The family classifier: which modulation family a detection is, from its fine spectrum
and its envelope.

The segmenter's cells say where; their class scores, voted over a detection, said "psk"
for nearly everything (a tile's 256-bin cells see too little of a signal's shape). This
small network sees one detection at a time, after the fine PSD settled its edges: the
PSD's shape over its band (``blocks.family_features``), its bandwidth, SNR, how
its band moved, and two envelope statistics of its first tiles' in-band samples (4th
moment and squared-envelope line: PSK and QAM share one spectral shape, not one
envelope). It runs once per detection, so it costs the stream little.

Training examples are the segmenter's own detections on synthetic scenes (the features the
block computes, matched to the truth at IoU >= 0.5), so the classifier learns what the
detector really delivers: every other scene from the fixed synthesizer, the others
randomized (``variety``: other pulse shapes, indices, numerologies, messages, new families
and receiver habits), 3000 scenes in all. Its probabilities are then calibrated by one
temperature (the logits divided by it before the softmax), fitted on half of the held-out
detections by likelihood and checked on the other half (expected calibration error); the
block calls a detection ``unknown`` when the calibrated probability of its best family is
low.

    cvstream models train spectrum_family [--seed 0]   (needs the shipped segmenter; then
                                                        stores the segmenters' evaluation)
"""
from __future__ import annotations

import os

import numpy as np

from cvstream.blocks.family_features import (FAMILY_FEATURES, family_features,
                                             family_probabilities)
from cvstream.blocks.segmenter import SpectrumSegmenter

from .evaluate import Box, expected_calibration_error, match, reliability
from .synth import SceneConfig, scene
from .waveforms import CLASSES

NAME = "spectrum_family"
HIDDEN = 64


class _Recorder(SpectrumSegmenter):
    """The segmenter block, keeping each detection's features and box."""

    def start(self):
        super().start()
        self.records = []

    def _classify(self, tracks) -> None:
        for t in tracks:
            features = family_features(t)
            if features is not None:
                self.records.append((features, Box(t.start, t.stop, t.f_low, t.f_high)))


def examples(segmenter: str, scenes: int, seed: int = 0, progress=None,
             variety: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(features, family index) of the segmenter's detections that match a signal; with
    ``variety`` every other scene has randomized emitters and receivers, the others come
    from the fixed synthesizer."""
    xs, ys = [], []
    for k in range(scenes):
        cfg = SceneConfig(snr_db=(0.0, 30.0), variety=variety and k % 2 == 1)
        rng = np.random.default_rng([seed, 31, k])
        x, labels = scene(rng, cfg, n_signals=int(rng.integers(1, cfg.max_signals + 1)))
        # the fine view's narrow detections are not classified: left off, as it changes
        # none of the model's detections
        block = _Recorder(model=segmenter, family="", threads=1, narrow=False)
        block.process(x)
        block.flush()
        truth = [Box(s.start, s.stop, s.f_low, s.f_high) for s in labels]
        for i, j in match(truth, [box for _, box in block.records]):
            xs.append(block.records[j][0])
            ys.append(CLASSES.index(labels[i].label))
        if progress is not None:
            progress(k + 1, scenes)  # scenes synthesized and detected
    return np.stack(xs), np.array(ys)


def build():
    """forward(features (B, 1, FAMILY_FEATURES)) -> logits (B, 1, classes)."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FAMILY_FEATURES, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, len(CLASSES)))


def contract(evaluation: dict | None = None, temperature: float = 1.0) -> dict:
    return dict(task="spectrum_family", name=NAME, version="1", chunk=1,
                postprocess={"temperature": temperature},
                inputs=[dict(name="features", dtype="float32", item_shape=[FAMILY_FEATURES],
                             packing="none")],
                outputs=[dict(name="logits", dtype="float32", item_shape=[len(CLASSES)],
                              packing="none")],
                class_names=list(CLASSES),
                description="modulation family of a detection from its fine PSD",
                evaluation=evaluation or {})


def fit(x: np.ndarray, y: np.ndarray, steps: int = 3000, seed: int = 0, progress=None):
    import torch
    import torch.nn.functional as F

    from ..training import optimizer_step
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for step in range(steps):
        pick = torch.from_numpy(rng.integers(0, len(x), 256))
        loss = F.cross_entropy(model(xt[pick]), yt[pick])
        optimizer_step(model, opt, sched, loss, step, steps, progress)
    return model.eval()


def confusion(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    table = np.zeros((len(CLASSES), len(CLASSES)), int)
    np.add.at(table, (y, logits.argmax(1)), 1)
    return table


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature (0.05..20) that maximizes the likelihood of the labels ``y``."""
    import scipy.optimize

    def nll(log_t: float) -> float:
        p = family_probabilities(logits.astype(np.float64), np.exp(log_t))
        return -float(np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    best = scipy.optimize.minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)),
                                          method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def calibration_error(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = family_probabilities(logits, temperature)
    return expected_calibration_error(reliability(zip(p.max(1), p.argmax(1) == y)))


def train_and_export(out_dir: str, seed: int = 0, progress=None, steps: int = 3000,
                     scenes: int = 3000, segmenter: str | None = None,
                     store: bool = True) -> dict:
    """Features from the segmenter's detections on ``scenes`` scenes (a fifth held out),
    the classifier trained from ``seed``, exported with its held-out accuracy. With
    ``store``, the segmenters in ``out_dir`` (whose stored evaluation includes the labels)
    are evaluated again with it and their contracts updated."""
    from ..export import export_model
    own = os.path.join(out_dir, "spectrum_segmenter.onnx")
    segmenter = segmenter or own
    x, y = examples(segmenter, scenes, seed, progress)
    cut = len(x) * 4 // 5
    model = fit(x[:cut], y[:cut], steps, seed, progress)
    import torch
    with torch.no_grad():
        logits = model(torch.from_numpy(x[cut:])).numpy()
    table = confusion(logits, y[cut:])
    half = len(logits) // 2   # the temperature fitted on one half, checked on the other
    temperature = fit_temperature(logits[:half], y[cut:cut + half])
    result = {"examples": int(len(x)), "held_out": int(len(x) - cut),
              "accuracy": round(float(np.trace(table) / max(1, table.sum())), 4),
              "confusion": table.tolist(), "temperature": round(temperature, 4),
              "calibration_error": {
                  "raw": round(calibration_error(logits[half:], y[cut + half:], 1.0), 4),
                  "calibrated": round(calibration_error(logits[half:], y[cut + half:],
                                                        temperature), 4)}}
    export_model(model, contract(result, round(temperature, 4)),
                 os.path.join(out_dir, NAME + ".onnx"))
    if store and os.path.exists(own):
        from .segmenter import store_evaluation
        store_evaluation(out_dir, progress=progress)
    return result


def format_table(result: dict) -> str:
    ece = result.get("calibration_error", {})
    lines = [f"family classifier: {result['accuracy']:.3f} of {result['held_out']} held-out "
             f"detections ({result['examples']} in all); temperature "
             f"{result.get('temperature', 1.0):.3f}, expected calibration error "
             f"{ece.get('raw', float('nan')):.3f} raw, {ece.get('calibrated', float('nan')):.3f} "
             "calibrated (on the held-out half it was not fitted on)",
             "truth \\ predicted | " + " | ".join(CLASSES), "|".join(["---"] * 8)]
    for name, row in zip(CLASSES, result["confusion"]):
        lines.append(f"{name} | " + " | ".join(str(v) for v in row))
    return "\n".join(lines)
