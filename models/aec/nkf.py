"""A neural Kalman filter (NKF): the partitioned-block frequency-domain echo filter of
``blocks/kalman_echo.py`` with its Kalman gain predicted by a tiny complex-valued recurrent
network instead of the Kalman recursion.

The filter is the same exact overlap-save structure (``PARTS`` partitions of ``BLOCK``
taps behind the bulk-delay estimate; each partition's update constrained back to its
causal taps). Per frequency bin k and block, with X_p the reference spectra the
partitions read (newest first), E the a-priori error spectrum and M the microphone's:

    g     = network(X / s_x, E / s_m, dW s_x / s_m, its hidden state)    (PARTS complex)
    dW_p  = constrain(g_p conj(X_p) E / (PARTS s_x^2 + REG s_m^2)),   W += dW

s_x^2 and s_m^2 are the bin's smoothed reference (mean over partitions) and microphone
powers; they rise at once and fall slowly. g is bounded (tanh of its real and imaginary
parts) and takes the place of a diagonal Kalman filter's P_p / (sum |X|^2 P + noise): large
while the filter is far from the echo path, small in double talk and once converged. The
network sees only level-free features and is shared by all bins: a complex linear layer, a
split-complex GRU (complex linear maps; sigmoid and tanh on real and imaginary parts) and
two complex linear layers. The published NKF predicts the gain the same way for a per-bin
STFT filter of a few taps; here it drives the exact partitioned filter, whose 32 taps
per bin reach 320 ms past the bulk delay.

Training (``cvstream models train aec_nkf --seed 0``) runs the filter from zero weights
over crops of the training scenes (``synth.scene(variety=True)``) and minimizes the echo
the a-priori estimate misses, in dB per crop. The exported graph is the network for one
block of all bins, its hidden state fed back; ``blocks/neural_kalman.py`` runs the filter
around it (``kalman_aec`` with ``gain_model``, or a linear stage of kind ``nkf``).
"""
from __future__ import annotations

import numpy as np

NAME = "aec_nkf"
FS, BLOCK, PARTS = 16000, 160, 32
BINS = BLOCK + 1
HIDDEN = 16     # complex units of the recurrent network
FEATURES = 2 * PARTS + 1
SMOOTHING = 0.9
REG = 0.01      # x the microphone's power in the step's denominator: no large steps from
#                 near-end speech or noise while a bin's reference is silent
EPS = 1e-10
FLOOR = 1e-3    # x the microphone's power: the loss's floor (crops with no echo)
NKF_ROW = "kalman_aec, NKF gain (cvstream)"   # its row in the evaluation's tables


def build(hidden: int = HIDDEN):
    import torch
    from torch import nn

    class ComplexLinear(nn.Module):
        def __init__(self, n_in: int, n_out: int, scale: float = 1.0):
            super().__init__()
            std = scale / np.sqrt(2 * n_in)
            self.re = nn.Parameter(torch.randn(n_in, n_out) * std)
            self.im = nn.Parameter(torch.randn(n_in, n_out) * std)
            self.bias_re = nn.Parameter(torch.zeros(n_out))
            self.bias_im = nn.Parameter(torch.zeros(n_out))

        def forward(self, xr, xi):
            return (xr @ self.re - xi @ self.im + self.bias_re,
                    xr @ self.im + xi @ self.re + self.bias_im)

    class GainNetwork(nn.Module):
        """``forward(features, hidden)``: features (1, 1, BINS, FEATURES, 2) and hidden (1,
        BINS, H, 2) -> (gain (1, 1, BINS, PARTS, 2), next hidden); ``cell`` does the same
        on (N, ...) real and imaginary parts."""

        def __init__(self):
            super().__init__()
            self.hidden = hidden
            self.inp = ComplexLinear(FEATURES, hidden)
            self.gates_x = ComplexLinear(hidden, 3 * hidden)
            self.gates_h = ComplexLinear(hidden, 3 * hidden)
            self.mid = ComplexLinear(hidden, hidden)
            self.out = ComplexLinear(hidden, PARTS, scale=0.1)
            with torch.no_grad():
                self.out.bias_re.fill_(0.3)      # starts near an NLMS step of 0.3

        def cell(self, fr, fi, hr, hi):
            h = self.hidden
            xr, xi = self.inp(fr, fi)
            ar, ai = self.gates_x(torch.tanh(xr), torch.tanh(xi))
            br, bi = self.gates_h(hr, hi)
            rr, ri = torch.sigmoid(ar[:, :h] + br[:, :h]), torch.sigmoid(ai[:, :h] + bi[:, :h])
            zr = torch.sigmoid(ar[:, h:2 * h] + br[:, h:2 * h])
            zi = torch.sigmoid(ai[:, h:2 * h] + bi[:, h:2 * h])
            nr = torch.tanh(ar[:, 2 * h:] + rr * br[:, 2 * h:])
            ni = torch.tanh(ai[:, 2 * h:] + ri * bi[:, 2 * h:])
            hr, hi = (1 - zr) * nr + zr * hr, (1 - zi) * ni + zi * hi
            mr, mi = self.mid(hr, hi)
            gr, gi = self.out(torch.tanh(mr), torch.tanh(mi))
            return torch.tanh(gr), torch.tanh(gi), hr, hi

        def forward(self, features, hidden_state):
            f, h = features[0, 0], hidden_state[0]
            gr, gi, hr, hi = self.cell(f[..., 0], f[..., 1], h[..., 0], h[..., 1])
            return torch.stack([gr, gi], -1)[None, None], torch.stack([hr, hi], -1)[None]

    torch.manual_seed(0)
    return GainNetwork()


def contract(model, evaluation: dict | None = None) -> dict:
    return dict(task="echo_filter", name=NAME, version="1", chunk=1, out_items=1,
                sample_rate=FS,
                inputs=[dict(name="features", item_shape=[BINS, FEATURES])],
                outputs=[dict(name="gain", item_shape=[BINS, PARTS])],
                states=[dict(input="hidden", output="hidden_next",
                             shape=[1, BINS, model.hidden, 2])],
                preprocess={"echo_filter": {"kind": "nkf", "block": BLOCK,
                                            "partitions": PARTS, "reg": REG,
                                            "smoothing": SMOOTHING}},
                description="neural Kalman filter: the Kalman gain of a partitioned-block "
                            f"echo filter ({PARTS} x {BLOCK} taps) from a complex GRU, per bin",
                evaluation=evaluation or {})


def features(x, spec_e, dw, powers):
    """The network's inputs (torch, complex): x (B, PARTS, BINS) reference spectra, spec_e
    (B, BINS) the error, dw (B, PARTS, BINS) the last update, powers (B, 2, BINS) the smoothed
    (reference, microphone) powers -> (B, BINS, FEATURES)."""
    import torch
    sx, sm = torch.sqrt(powers[:, 0] + EPS), torch.sqrt(powers[:, 1] + EPS)
    return torch.cat([x / sx[:, None], (spec_e / sm)[:, None], dw * (sx / sm)[:, None]],
                     dim=1).transpose(1, 2)


def delay_blocks(mic: np.ndarray, ref: np.ndarray) -> int:
    """The partition offset the bulk-delay estimator settles on over a whole scene (0 if
    it finds none), as the canceller reads the reference."""
    from cvstream.blocks.kalman_echo import BulkDelayEstimator, KalmanEchoCanceller
    d = BulkDelayEstimator(FS, 0.5).push(mic, ref)
    return 0 if d is None else max(d // BLOCK - KalmanEchoCanceller.MARGIN, 0)


def ref_spectra(ref: np.ndarray, offset: int) -> np.ndarray:
    """(blocks, PARTS, BINS) complex64: per block, the spectra of the 2-block reference
    frames the partitions read (newest first), ``offset`` blocks back."""
    blocks = len(ref) // BLOCK
    pad = np.concatenate([np.zeros((offset + PARTS) * BLOCK, np.float32), ref])
    frames = np.lib.stride_tricks.sliding_window_view(pad, 2 * BLOCK)[::BLOCK]
    spec = np.fft.rfft(frames, axis=1).astype(np.complex64)
    # frame j ends with reference block j + 1 - offset - PARTS; block t, partition p reads
    # the frame ending with block t - offset - p
    idx = np.arange(blocks)[:, None] + PARTS - 1 - np.arange(PARTS)[None, :]
    return spec[idx]


def pool(seed: int, scenes: int, seconds: float = 4.0, progress=None) -> list:
    """Training scenes (``synth.scene(variety=True)``): mic and echo blocks, and the
    reference spectra the partitions read at the delay the estimator settles on over the
    whole scene (the runtime starts at 0 and moves when the estimator is sure)."""
    from .synth import SCENARIOS, scene
    out = []
    for k in range(scenes):
        sig, _ = scene(np.random.default_rng([seed, 7, k]), seconds, SCENARIOS[k % 4],
                       variety=True)
        n = len(sig["mic"]) // BLOCK * BLOCK
        mic, ref = sig["mic"][:n], sig["ref"][:n]
        echo = mic - sig["near"][:n] - sig["noise"][:n]
        out.append((mic.reshape(-1, BLOCK), echo.reshape(-1, BLOCK),
                    ref_spectra(ref, delay_blocks(mic, ref))))
        if progress is not None:
            progress(k + 1, scenes)
    return out


def run(model, mic, x):
    """The filter in torch from zero state: mic (B, T, BLOCK) float, x (B, T, PARTS, BINS)
    complex -> (B, T, BLOCK) a-priori echo estimates."""
    import torch
    b, t = mic.shape[:2]
    w = torch.zeros(b, PARTS, BINS, dtype=torch.complex64)
    dw = torch.zeros_like(w)
    powers = torch.zeros(b, 2, BINS)
    hr = hi = torch.zeros(b * BINS, model.hidden)
    zeros = torch.zeros(b, BLOCK)
    out = []
    for i in range(t):
        xi = x[:, i]
        y = torch.fft.irfft((w * xi).sum(1), n=2 * BLOCK)[:, BLOCK:]
        e = mic[:, i] - y
        spec_e = torch.fft.rfft(torch.cat([zeros, e], 1))
        spec_m = torch.fft.rfft(torch.cat([zeros, mic[:, i]], 1))
        now = torch.stack([(xi.abs() ** 2).mean(1), spec_m.abs() ** 2], 1)
        powers = torch.maximum(SMOOTHING * powers + (1 - SMOOTHING) * now, now)
        f = features(xi, spec_e, dw, powers).reshape(b * BINS, FEATURES)
        gr, gi, hr, hi = model.cell(f.real, f.imag, hr, hi)
        g = torch.complex(gr, gi).reshape(b, BINS, PARTS).transpose(1, 2)
        scale = 1.0 / (PARTS * powers[:, 0] + REG * powers[:, 1] + EPS)
        update = torch.fft.irfft(g * xi.conj() * (spec_e * scale)[:, None], n=2 * BLOCK)
        dw = torch.fft.rfft(torch.cat([update[..., :BLOCK], torch.zeros_like(
            update[..., BLOCK:])], -1))
        w = w + dw
        out.append(y)
    return torch.stack(out, 1)


def missed_db(est, echo, mic):
    """Per crop: 10 log10 of the echo the estimate misses over the echo present, both with
    a floor of FLOOR x the microphone's power (so crops without echo count false
    estimates); (B, T, BLOCK) tensors."""
    import torch
    floor = FLOOR * (mic ** 2).sum(dim=(1, 2))
    miss = ((est - echo) ** 2).sum(dim=(1, 2))
    return 10 * torch.log10((miss + floor + 1e-12) / ((echo ** 2).sum(dim=(1, 2)) + floor
                                                       + 1e-12))


def train(steps: int = 400, seed: int = 0, scenes: int = 200, batch: int = 8,
          frames: int = 300, progress=None):
    """Train from ``seed`` on random crops of the pool (the filter starting from zero
    weights at each crop, so convergence speed counts as much as the steady state)."""
    import torch

    from ..training import optimizer_step
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = pool(seed, scenes)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for step in range(steps):
        mics, echoes, xs = [], [], []
        for _ in range(batch):
            m, y, x = data[rng.integers(len(data))]
            t0 = int(rng.integers(0, len(m) - frames + 1))
            gain = float(10 ** rng.uniform(-1, 0.3))
            mics.append(m[t0:t0 + frames] * gain)
            echoes.append(y[t0:t0 + frames] * gain)
            xs.append(x[t0:t0 + frames])
        mic, echo = (torch.from_numpy(np.stack(v)) for v in (mics, echoes))
        est = run(model, mic, torch.from_numpy(np.stack(xs)))
        loss = missed_db(est, echo, mic).mean()
        optimizer_step(model, opt, sched, loss, step, steps, progress, clip=1.0)
    return model.eval()


def train_and_export(out_dir: str, steps: int = 600, seed: int = 0, progress=None,
                     eval_scenes: int = 32) -> dict:
    """Train from ``seed``, export to ``out_dir``/aec_nkf.onnx, and compare the filter with
    its Kalman recursion as linear stages (``compare``); the NKF's rows go into its
    contract."""
    import os

    from ..export import export_model
    model = train(steps, seed, progress=progress)
    path = os.path.join(out_dir, NAME + ".onnx")
    export_model(model, contract(model), path)
    return store_evaluation(path, eval_scenes)


def store_evaluation(path: str, scenes_per_scenario: int = 32) -> dict:
    """``compare`` the model at ``path`` with the Kalman recursion and store its rows in its
    contract; returns ``compare``'s result."""
    from cvstream.contract import read_contract

    from ..export import rewrite_contract
    result = compare(path, scenes_per_scenario)
    c = read_contract(path)
    c.evaluation = {s: {k: round(v, 4) for k, v in rows[NKF_ROW].items()}
                    for s, rows in result["table"].items()}
    rewrite_contract(path, c)
    return result



def compare(path: str, scenes_per_scenario: int = 32, progress=None) -> dict:
    """The partitioned-block filter with the Kalman recursion's gain and with the gain of
    the model at ``path``, alone, on the evaluation's scenes: {"table": evaluate's table,
    "curves": erle_curves through an echo-path change (a quarter as many scenes)}."""
    from .evaluate import erle_curves, evaluate, kalman, neural_kalman
    cancellers = {"kalman_aec (cvstream)": kalman, NKF_ROW: neural_kalman(path)}
    return {"table": evaluate(cancellers, scenes_per_scenario, progress=progress),
            "curves": erle_curves(cancellers, max(1, scenes_per_scenario // 4))}


def format_table(result: dict) -> str:
    from .evaluate import format_reconvergence
    from .evaluate import format_table as aec_table
    return (aec_table(result["table"]) + "\n\nfar-end single talk, echo path changed "
            "half-way (12 s scenes):\n" + format_reconvergence(result["curves"]))
