"""Demo blocks for echo cancellation: a synthesized scene as a source, and a PNG of the
microphone / reference / output spectrograms."""
from __future__ import annotations

import numpy as np

from cvstream import EndOfStream, In, Out, Param, Sink, Source, register
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError
from cvstream.params import OUTPUT_FILE

from .plots import need_matplotlib


@register("aec_scene_source")
class AecSceneSource(Source):
    """A synthesized echo-cancellation scene (espeak-ng talkers, a simulated room, a
    nonlinear loudspeaker, background noise) streamed as microphone and reference.

    Ports: mic, ref, near (float32 at 16 kHz; near is the target, optional). Latency: none.
    Example: ``scene: {type: aec_scene_source, scenario: dt, seconds: 8, seed: 3}``
    """

    mic = Out("float32")
    ref = Out("float32")
    near = Out("float32", optional=True)
    scenario = Param(str, default="dt", choices=("fst", "nst", "dt", "epc"))
    seconds = Param(float, default=8.0, min=1.0, unit="s")
    seed = Param(int, default=0)
    chunk = Param(int, default=1600, min=1, doc="samples per work call")

    def check(self):
        import importlib.util
        from cvstream.models.aec.speech import espeak_available
        if importlib.util.find_spec("pyroomacoustics") is None:
            raise CvstreamError("the scene synthesizer needs the aec extra: "
                                "pip install 'cvstream[aec]'")
        if not espeak_available():
            raise CvstreamError("the scene synthesizer needs espeak-ng: "
                                "apt-get install espeak-ng")

    def output_types(self, in_types):
        return {name: PortType("float32", (), 16000.0) for name in ("mic", "ref", "near")}

    def total_items(self):
        return int(self.seconds * 16000)

    def start(self):
        from cvstream.models.aec.synth import scene
        self._sig, _ = scene(np.random.default_rng(self.seed), self.seconds, self.scenario)
        self._pos = 0
        self.add_tag(0, "rx_rate", 16000.0)

    def work(self):
        if self._pos >= len(self._sig["mic"]):
            raise EndOfStream
        part = slice(self._pos, self._pos + self.chunk)
        self._pos += self.chunk
        return self._sig["mic"][part], self._sig["ref"][part], self._sig["near"][part]


@register("audio_spectrogram_png")
class AudioSpectrogramPng(Sink):
    """Draw the spectrograms of the microphone, the reference and the output, one above the
    other, into a PNG at the end of the stream.

    Ports: mic, ref, out (float32, 16 kHz). Example: ``pic: {type: audio_spectrogram_png,
    path: aec.png}``
    """

    mic = In("float32")
    ref = In("float32")
    out = In("float32")
    path = Param(OUTPUT_FILE, doc="PNG file to write")
    rate = Param(float, default=16000.0, min=1.0, unit="Hz")

    def check(self):
        need_matplotlib("audio_spectrogram_png")

    def start(self):
        self._parts = {"mic": [], "ref": [], "out": []}

    def work(self, mic, ref, out):
        for key, x in (("mic", mic), ("ref", ref), ("out", out)):
            self._parts[key].append(np.array(x))

    def stop(self):
        if not getattr(self, "_parts", None) or not self._parts["mic"]:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import scipy.signal
        fig, axes = plt.subplots(3, 1, figsize=(10, 8), dpi=100, sharex=True)
        titles = {"mic": "microphone (near end + echo + noise)", "ref": "far-end reference",
                  "out": "cvstream aec output"}
        for ax, key in zip(axes, ("mic", "ref", "out")):
            x = np.concatenate(self._parts[key])
            f, t, s = scipy.signal.spectrogram(x, self.rate, nperseg=512, noverlap=384)
            ax.pcolormesh(t, f / 1e3, 10 * np.log10(s + 1e-12), shading="auto",
                          cmap="magma", vmin=-100, vmax=-30)
            ax.set_ylabel("kHz")
            ax.set_title(titles[key], fontsize=9)
        axes[-1].set_xlabel("time (s)")
        fig.tight_layout()
        fig.savefig(self.path)
        plt.close(fig)
        self._parts = None
