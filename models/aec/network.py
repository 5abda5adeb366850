"""The echo canceller network: causal, complex-valued, dilated, dual complex mask.

STFT frames (20 ms sqrt-Hann window, 10 ms hop, 161 bins at 16 kHz) of the microphone and
the far-end reference enter as complex channels (after a log compander). A streaming causal
complex convolution over time mixes them into C channels, four more (dilations 2, 4, 8, 16,
modReLU, residual) give a receptive field of 63 frames (630 ms: bulk delays up to 200 ms and
the early room response). Two bounded complex masks come out per bin: the echo mask m_e and
the noise mask m_n; the near-end estimate is m_n (m_e M). Each convolution keeps its own
cache, so the model runs frame by frame with its state fed back by the runtime, and the
streaming output equals the whole-signal output. Algorithmic latency: window 20 ms + hop
10 ms = 30 ms, no look-ahead.
"""
from __future__ import annotations

import numpy as np

NAME = "aec_cv"
FS, WIN, HOP = 16000, 320, 160
BINS = WIN // 2 + 1
WIDTH = 48
DILATIONS = (2, 4, 8, 16)


def build(width: int = WIDTH):
    import torch
    from torch import nn

    from ..nn import BoundedMask, ComplexConv, LogCompander, ModReLU
    from ..nn.layout import join, split
    from ..nn.streaming import StreamingCausalConv

    class EchoCanceller(nn.Module):
        """forward(mic, ref, *caches) with mic/ref (B, T, BINS, 2) interleaved spectra ->
        (near (B, T, BINS, 2), *next caches); without caches, whole-signal causal."""

        def __init__(self):
            super().__init__()
            self.compand = LogCompander()
            self.convs = nn.ModuleList([StreamingCausalConv(2 * BINS, width, 3)] + [
                StreamingCausalConv(width, width, 3, dilation=d) for d in DILATIONS])
            self.acts = nn.ModuleList(ModReLU(width) for _ in self.convs)
            self.head = ComplexConv(width, 2 * BINS, 1)
            self.mask = BoundedMask()

        def cache_shapes(self) -> list[list[int]]:
            return [c.cache_shape() for c in self.convs]

        def forward(self, mic, ref, *caches):
            b, t = mic.shape[0], mic.shape[1]
            # (B, T, F, 2) x 2 -> split layout (B, 2 * 2F, T): complex channels = bins
            both = torch.cat([mic, ref], dim=2)                  # (B, T, 2F, 2)
            x = both.permute(0, 3, 2, 1).reshape(b, 2 * 2 * BINS, t)
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
            masks = self.mask(self.head(h))                      # (B, 2 * 2F, T)
            mr, mi = split(masks)                                # (B, 2F, T) each
            me_r, mn_r, me_i, mn_i = mr[:, :BINS], mr[:, BINS:], mi[:, :BINS], mi[:, BINS:]
            m_r = mic[..., 0].transpose(1, 2)                    # (B, F, T)
            m_i = mic[..., 1].transpose(1, 2)
            e_r, e_i = me_r * m_r - me_i * m_i, me_r * m_i + me_i * m_r   # echo removed
            s_r, s_i = mn_r * e_r - mn_i * e_i, mn_r * e_i + mn_i * e_r   # noise removed
            out = torch.stack([s_r, s_i], dim=-1).transpose(1, 2)          # (B, T, F, 2)
            echo_free = torch.stack([e_r, e_i], dim=-1).transpose(1, 2)
            if caches:
                return (out, *new)
            return out, echo_free

    torch.manual_seed(0)
    return EchoCanceller()


def contract(model, evaluation: dict | None = None) -> dict:
    states = [dict(input=f"cache{i}", output=f"cache{i}_next", shape=shape)
              for i, shape in enumerate(model.cache_shapes())]
    return dict(task="aec", name=NAME, version="1", chunk=1, out_items=1, sample_rate=FS,
                inputs=[dict(name="mic", item_shape=[BINS]), dict(name="ref", item_shape=[BINS])],
                outputs=[dict(name="near", item_shape=[BINS])], states=states,
                preprocess={"stft": {"size": WIN, "hop": HOP, "window": "sqrt_hann"}},
                description="causal complex dilated CNN, dual complex mask (echo, noise); "
                            "algorithmic latency 30 ms",
                evaluation=evaluation or {})


def streaming(model):
    """The module to export: forward(mic, ref, *caches) -> (near, *next caches)."""
    import torch

    class Streaming(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, mic, ref, *caches):
            return self.model(mic, ref, *caches)

    return Streaming()


def spectra(x: np.ndarray) -> np.ndarray:
    """(frames, BINS) complex64 STFT of a float32 signal, as the stft block computes it."""
    from cvstream.blocks.stft import STFT
    return STFT(size=WIN, hop=HOP).process(x.astype(np.float32))


def pool(seed: int, scenes: int, seconds: float = 4.0, progress=None) -> list:
    """Pre-synthesized training scenes: spectra of (mic, ref, near, near + noise)."""
    from .synth import SCENARIOS, scene
    out = []
    for k in range(scenes):
        sig, _ = scene(np.random.default_rng([seed, k]), seconds, SCENARIOS[k % 4])
        out.append(tuple(spectra(x) for x in (sig["mic"], sig["ref"], sig["near"],
                                               sig["near"] + sig["noise"])))
        if progress is not None:
            progress(k + 1, scenes)
    return out


def _interleaved(z: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(z).view(np.float32).reshape(*z.shape, 2)


def train(steps: int = 1500, seed: int = 0, scenes: int = 160, batch: int = 8,
          frames: int = 200, progress=None):
    """Train from ``seed``: a pool of synthesized scenes, random crops, complex spectral MSE
    plus a compressed-magnitude loss on the output, and on the echo-free intermediate."""
    import torch
    from ..training import optimizer_step
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = pool(seed, scenes)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)

    def loss_fn(est, ref):
        mag_e = torch.sqrt((est ** 2).sum(-1) + 1e-8) ** 0.3
        mag_r = torch.sqrt((ref ** 2).sum(-1) + 1e-8) ** 0.3
        return torch.mean((est - ref) ** 2) * 100 + torch.mean((mag_e - mag_r) ** 2)

    for step in range(steps):
        xs = [[], [], [], []]
        for _ in range(batch):
            item = data[rng.integers(len(data))]
            t0 = int(rng.integers(0, len(item[0]) - frames))
            gain = float(10 ** rng.uniform(-1, 0.3))
            for j, z in enumerate(item):
                xs[j].append(z[t0:t0 + frames] * (gain if j != 1 else 1.0))
        mic, ref, near, echo_free = (torch.from_numpy(_interleaved(np.stack(v))) for v in xs)
        out, mid = model(mic, ref)
        loss = loss_fn(out, near) + 0.5 * loss_fn(mid, echo_free)
        optimizer_step(model, opt, sched, loss, step, steps, progress, clip=5.0)
    return model.eval()


def train_and_export(out_dir: str, steps: int = 5000, seed: int = 0, progress=None,
                     scenes: int = 320, eval_scenes: int = 8) -> dict:
    """Train from ``seed``, export the streaming model to ``out_dir``, evaluate it beside
    WebRTC AEC3, Speex and NLMS, and store its rows in the contract."""
    import os

    from ..export import export_model
    from .evaluate import cancellers, evaluate
    model = train(steps, seed, scenes=scenes, progress=progress)
    path = os.path.join(out_dir, NAME + ".onnx")
    export_model(streaming(model), contract(model), path)
    table = evaluate(cancellers(path), scenes_per_scenario=eval_scenes)
    mine = {s: {k: round(v, 4) for k, v in rows["aec (cvstream, learned)"].items()}
            for s, rows in table.items()}
    export_model(streaming(model), contract(model, mine), path)
    return table


from .evaluate import format_table  # noqa: E402,F401  (the family's table)
