"""The echo canceller: a linear echo filter, then a causal, complex-valued, dilated network
with per-bin complex masks, told how aggressive to be.

First the partitioned-block Kalman filter (``cvstream.blocks.kalman_echo``, run by the
block in numpy on 10 ms blocks: 32 partitions behind a 0-500 ms bulk-delay estimate)
predicts the echo y from the reference and leaves the error e = m - y. STFT frames (20 ms
sqrt-Hann window, 10 ms hop, 161 bins at 16 kHz) of m, r, e and y go to the network. It
sees the microphone M, the reference R and the echo estimate Y as complex channels (after
a log compander): a streaming causal complex convolution over time mixes them into C
channels, four more (dilations 2, 4, 8, 16, modReLU, residual) give a receptive field of
63 frames (630 ms: what the linear filter missed, late reverberation, the loudspeaker's
nonlinearity, the noise). A head turns that context into a few complex features per bin;
each bin's own history comes from causal convolutions over time of its log powers (M, E,
Y, R; shared by all bins, 310 ms), and a small network shared by all bins joins both with
the bin's log powers and the aggressiveness (0..1) into three bounded complex masks per
bin: a, b and the noise mask m_n; the echo-free spectrum is a M + b E (per bin and frame
the network can weigh how far to trust the linear filter), the near-end estimate
m_n (a M + b E). Training
draws the aggressiveness per crop and weighs the residual-echo term of the loss by it
(``echo_weight``), so one model covers the trade between echo removal and near-end
distortion. Each convolution keeps its own cache, so the model runs frame by frame with
its state fed back by the runtime, and the streaming output equals the whole-signal
output. Algorithmic latency: window 20 ms + hop 10 ms = 30 ms, no look-ahead.
"""
from __future__ import annotations

import numpy as np

NAME = "aec_cv"
FS, WIN, HOP = 16000, 320, 160
BINS = WIN // 2 + 1
WIDTH = 48
DILATIONS = (2, 4, 8, 16)
FEATURES = 4   # complex context features per bin from the head
HIDDEN = 32    # the per-bin network's hidden width
#: each bin's own history: causal convolutions over time of the bin's log powers (shared by
#: all bins), LOCAL channels, kernel 3 at these dilations (31 frames, 310 ms)
LOCAL, LOCAL_DILATIONS = 16, (1, 2, 4, 8)
#: the residual-echo term's weight in the training loss at aggressiveness 0 and 1 (log scale
#: between): the network is told the aggressiveness and trained at random ones
ECHO_WEIGHTS = (0.02, 2.0)
#: the linear stage, stored in the contract (``preprocess.echo_filter``) and run by the block:
#: the partitioned-block Kalman filter, 32 partitions of 10 ms behind a 0-500 ms bulk delay
ECHO_FILTER = {"kind": "pfdkf", "partitions": 32, "channels": 1, "max_delay": 0.5}


def echo_weight(aggressiveness):
    """The residual-echo loss weight an aggressiveness (0..1) stands for."""
    lo, hi = ECHO_WEIGHTS
    return lo * (hi / lo) ** aggressiveness


def apply_masks(masks, mic, err):
    """The canceller's masks (a, b, m_n as real and imaginary parts, each (B, T, F)) on
    interleaved (B, T, F, 2) spectra: (echo-free a M + b E, near-end m_n (a M + b E))."""
    import torch
    ar, ai, br, bi, nr, ni = masks

    def cmul(zr, zi, x):
        return zr * x[..., 0] - zi * x[..., 1], zr * x[..., 1] + zi * x[..., 0]

    (xr, xi), (yr, yi) = cmul(ar, ai, mic), cmul(br, bi, err)
    free = torch.stack([xr + yr, xi + yi], dim=-1)
    return free, torch.stack(cmul(nr, ni, free), dim=-1)


def build(width: int = WIDTH):
    import torch
    from torch import nn

    from ..nn import BoundedMask, ComplexConv, LogCompander, ModReLU
    from ..nn.layout import split
    from ..nn.streaming import StreamingCausalConv, StreamingRealConv

    class EchoCanceller(nn.Module):
        """forward(mic, ref, err, echo, aggressiveness, *caches): four (B, T, BINS, 2)
        interleaved spectra and (B, T, 1) aggressiveness -> (near (B, T, BINS, 2), *next
        caches); without caches, whole-signal causal, returning (near, echo-free, the masks
        (a, b, m_n) as real and imaginary parts)."""

        def __init__(self):
            super().__init__()
            self.compand = LogCompander()
            self.convs = nn.ModuleList([StreamingCausalConv(3 * BINS, width, 3)] + [
                StreamingCausalConv(width, width, 3, dilation=d) for d in DILATIONS])
            self.acts = nn.ModuleList(ModReLU(width) for _ in self.convs)
            self.head = ComplexConv(width, FEATURES * BINS, 1)
            self.local = nn.ModuleList(
                StreamingRealConv(4 if i == 0 else LOCAL, LOCAL, 3, dilation=d)
                for i, d in enumerate(LOCAL_DILATIONS))
            self.per_bin = nn.Sequential(nn.Linear(2 * FEATURES + 5 + LOCAL, HIDDEN), nn.ReLU(),
                                         nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                         nn.Linear(HIDDEN, 6))
            self.mask = BoundedMask()

        def cache_shapes(self) -> list[list[int]]:
            return ([c.cache_shape() for c in self.convs]
                    + [c.cache_shape(BINS) for c in self.local])

        def history(self, local, caches):
            """Each bin's causal history of its log powers (B, 4, F, T) -> (B, LOCAL, F,
            T), and the next caches (bins as the batch of a 1-D convolution)."""
            b, _, f, t = local.shape
            h = local.permute(0, 2, 1, 3).reshape(b * f, 4, t)
            new = []
            for i, conv in enumerate(self.local):
                if caches:
                    y, c = conv(h, caches[i])
                    new.append(c)
                else:
                    y = conv(h)
                y = torch.relu(y)
                h = y if i == 0 else h + y
            return h.reshape(b, f, -1, t).permute(0, 2, 1, 3), new

        def forward(self, mic, ref, err, echo, aggressiveness, *caches):
            b, t = mic.shape[0], mic.shape[1]
            # (B, T, F, 2) x 3 -> split layout (B, 2 * 3F, T): complex channels = bins
            x = torch.cat([mic, ref, echo], dim=2).permute(0, 3, 2, 1).reshape(
                b, 2 * 3 * BINS, t)
            h = self.compand(x)
            new = []
            for i, (conv, act) in enumerate(zip(self.convs, self.acts)):
                if caches:
                    y, c = conv(h, caches[i])
                    new.append(c)
                else:
                    y = conv(h)
                y = act(y)
                h = y if i == 0 else h + y
            fr, fi = split(self.head(h))                      # (B, FEATURES * F, T) each
            ctx = torch.stack([fr, fi], dim=1).reshape(b, 2 * FEATURES, BINS, t)
            power = torch.stack([(z * z).sum(-1) for z in (mic, err, echo, ref)], dim=1)
            local = torch.log10(power.transpose(2, 3) + 1e-8)  # (B, 4, F, T)
            level = aggressiveness.transpose(1, 2)[:, :, None, :].expand(b, 1, BINS, t)
            own, more = self.history(local, caches[len(self.convs):] if caches else ())
            new += more
            feats = torch.cat([ctx, local, level, own], dim=1).permute(0, 3, 2, 1)
            out6 = self.per_bin(feats)                        # (B, T, F, 6)
            # three complex masks, each bounded: (a, b, m_n)
            masks = self.mask(torch.cat([out6[..., 0::2], out6[..., 1::2]], dim=-1)
                              .permute(0, 3, 2, 1))           # split layout (B, 6, F, T)
            ar, br, nr, ai, bi, ni = (masks[:, k].transpose(1, 2) for k in range(6))
            parts = (ar, ai, br, bi, nr, ni)
            free, out = apply_masks(parts, mic, err)
            if caches:
                return (out, *new)
            return out, free, parts

    torch.manual_seed(0)
    return EchoCanceller()


def contract(model, evaluation: dict | None = None) -> dict:
    states = [dict(input=f"cache{i}", output=f"cache{i}_next", shape=shape)
              for i, shape in enumerate(model.cache_shapes())]
    return dict(task="aec", name=NAME, version="1", chunk=1, out_items=1, sample_rate=FS,
                inputs=[dict(name=n, item_shape=[BINS]) for n in ("mic", "ref", "err", "echo")]
                + [dict(name="aggressiveness", item_shape=[1], dtype="float32", packing="none")],
                outputs=[dict(name="near", item_shape=[BINS])], states=states,
                preprocess={"stft": {"size": WIN, "hop": HOP, "window": "sqrt_hann"},
                            "echo_filter": dict(ECHO_FILTER)},
                description="partitioned-block Kalman echo filter, then a causal complex "
                            "dilated CNN with per-bin complex masks, told the aggressiveness; "
                            "algorithmic latency 30 ms",
                evaluation=evaluation or {})


def streaming(model):
    """The module to export: forward(mic, ref, err, echo, aggressiveness, *caches) ->
    (near, *next caches)."""
    import torch

    class Streaming(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, mic, ref, err, echo, aggressiveness, *caches):
            return self.model(mic, ref, err, echo, aggressiveness, *caches)

    return Streaming()


def spectra(x: np.ndarray) -> np.ndarray:
    """(frames, BINS) complex64 STFT of a float32 signal, as the stft block computes it."""
    from cvstream.blocks.stft import STFT
    return STFT(size=WIN, hop=HOP).process(x.astype(np.float32))


def linear_stage(mic: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(error, echo estimate) spectra of the linear stage on float32 signals (whole hops),
    as the block runs it."""
    from cvstream.blocks.echo_filter import linear_stage as build
    return build(ECHO_FILTER, WIN, HOP, FS).process(mic, ref, spectra(mic), spectra(ref))


def pool(seed: int, scenes: int, seconds: float = 4.0, progress=None,
         variety: bool = True) -> list:
    """Pre-synthesized training scenes: spectra of (mic, ref, err, echo, near, near + noise,
    the echo alone), err and echo from the linear stage running over the whole scene;
    ``variety`` adds the synthesizer's wider training conditions (``synth.Variety``)."""
    from .synth import SCENARIOS, scene
    out = []
    for k in range(scenes):
        sig, _ = scene(np.random.default_rng([seed, k]), seconds, SCENARIOS[k % 4],
                       variety=variety)
        n = len(sig["mic"]) // HOP * HOP
        mic, ref = sig["mic"][:n], sig["ref"][:n]
        near, noise = sig["near"][:n], sig["noise"][:n]
        out.append((spectra(mic), spectra(ref), *linear_stage(mic, ref), spectra(near),
                    spectra(near + noise), spectra(mic - near - noise)))
        if progress is not None:
            progress(k + 1, scenes)
    return out


def _interleaved(z: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(z).view(np.float32).reshape(*z.shape, 2)


def train(steps: int = 1500, seed: int = 0, scenes: int = 160, batch: int = 8,
          frames: int = 200, progress=None, variety: bool = True):
    """Train from ``seed``: a pool of synthesized scenes, random crops, complex spectral MSE
    plus a compressed-magnitude loss on the output and on the echo-free intermediate, plus
    a weight x the residual echo: log10 of the echo energy the masks let through over the
    echo energy in the microphone, per crop (the ERLE, scale-free, in every scenario with
    an echo; the other terms keep the near-end speech). Each crop draws an aggressiveness
    (0..1), which the network is told and which sets that weight (``echo_weight``)."""
    import torch
    from ..training import optimizer_step
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = pool(seed, scenes, variety=variety)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)

    def loss_fn(est, ref):
        mag_e = torch.sqrt((est ** 2).sum(-1) + 1e-8) ** 0.3
        mag_r = torch.sqrt((ref ** 2).sum(-1) + 1e-8) ** 0.3
        return torch.mean((est - ref) ** 2) * 100 + torch.mean((mag_e - mag_r) ** 2)

    def residual_echo(masks, echo_only, estimate, mic, weights):
        """Weighted mean of log10(passed / present) echo energy per crop, m_n (a X + b (X -
        Y)), over the crops whose echo is not negligible."""
        _, passed = apply_masks(masks, echo_only, echo_only - estimate)
        passed = (passed ** 2).sum(dim=(1, 2, 3))
        present = (echo_only ** 2).sum(dim=(1, 2, 3))
        valid = (present > 1e-3 * (mic ** 2).sum(dim=(1, 2, 3))).float()
        ratio = torch.log10((passed + 1e-9) / (present + 1e-9))
        return (weights * ratio * valid).sum() / valid.sum().clamp(min=1.0)

    for step in range(steps):
        xs = [[] for _ in range(7)]
        for _ in range(batch):
            item = data[rng.integers(len(data))]
            t0 = int(rng.integers(0, len(item[0]) - frames))
            gain = float(10 ** rng.uniform(-1, 0.3))  # the microphone's level (the linear
            for j, z in enumerate(item):                 # stage scales with it)
                xs[j].append(z[t0:t0 + frames] * (gain if j != 1 else 1.0))
        mic, ref, err, echo, near, echo_free, echo_only = (
            torch.from_numpy(_interleaved(np.stack(v))) for v in xs)
        level = rng.uniform(0, 1, batch).astype(np.float32)
        out, mid, masks = model(mic, ref, err, echo, torch.from_numpy(
            np.repeat(level[:, None, None], frames, axis=1)))
        loss = loss_fn(out, near) + 0.5 * loss_fn(mid, echo_free)
        loss = loss + residual_echo(masks, echo_only, echo, mic,
                                    torch.from_numpy(echo_weight(level).astype(np.float32)))
        optimizer_step(model, opt, sched, loss, step, steps, progress, clip=5.0)
    return model.eval()


def train_and_export(out_dir: str, steps: int = 8000, seed: int = 0, progress=None,
                     scenes: int = 320, eval_scenes: int = 32, variety: bool = True) -> dict:
    """Train from ``seed``, export the streaming model to ``out_dir``, evaluate it beside
    WebRTC AEC3, Speex and NLMS (the scenes of ``cvstream models eval aec``), and store its
    rows in the contract. ``variety``: train on the synthesizer's wider conditions (bulk
    delays to 500 ms, clock drift, path changes at random times)."""
    import os

    from ..export import export_model
    model = train(steps, seed, scenes=scenes, progress=progress, variety=variety)
    path = os.path.join(out_dir, NAME + ".onnx")
    export_model(streaming(model), contract(model), path)
    return store_evaluation(path, eval_scenes)


def store_evaluation(path: str, scenes_per_scenario: int = 32) -> dict:
    """Evaluate the model at ``path`` beside the classical cancellers and store its rows in
    its contract; returns the whole table."""
    from cvstream.contract import read_contract

    from ..export import rewrite_contract
    from .evaluate import cancellers, evaluate
    table = evaluate(cancellers(path), scenes_per_scenario=scenes_per_scenario)
    c = read_contract(path)
    c.evaluation = {s: {k: round(v, 4) for k, v in rows["aec (cvstream, learned)"].items()}
                    for s, rows in table.items()}
    rewrite_contract(path, c)
    return table


from .evaluate import format_table  # noqa: E402,F401  (the family's table)
