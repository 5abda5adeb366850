"""Audio files through soundfile (libsndfile): audio_source and audio_sink (wav, flac, ...)."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from cvstream import EndOfStream, In, Out, Param, Sink, Source, register
from cvstream.chunk import tag_number
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE


def _info(path: str):
    try:
        return sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise CvstreamError(f"'{path}' is not a readable audio file: {exc}") from None


@register("audio_source")
class AudioSource(Source):
    """Read an audio file (wav, flac, ogg...) as float32 in [-1, 1].

    ``channels: mono`` mixes to one channel (scalar items); ``all`` keeps every channel
    (items of shape (channels,)). Emits an ``rx_rate`` tag with the file's sample rate.
    Ports: out (float32). Latency: none.
    Example: ``mic: {type: audio_source, path: mic.wav}``
    """

    out = Out("float32", None)
    path = Param(INPUT_FILE, doc="audio file")
    channels = Param(str, default="mono", choices=("mono", "all"))
    chunk = Param(int, default=16384, min=1, doc="frames per work call")

    def output_types(self, in_types):
        info = _info(self.path)
        self.rate = info.samplerate
        shape = () if self.channels == "mono" or info.channels == 1 else (info.channels,)
        return {"out": PortType("float32", shape, float(info.samplerate))}

    def total_items(self):
        return _info(self.path).frames

    def start(self):
        self.output_types({})
        self._fh = sf.SoundFile(self.path)
        self.add_tag(0, "rx_rate", float(self._fh.samplerate))

    def work(self):
        x = self._fh.read(self.chunk, dtype="float32", always_2d=True)
        if not len(x):
            raise EndOfStream
        if self.channels == "mono" or x.shape[1] == 1:
            return x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0].copy()
        return x

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()


@register("audio_sink")
class AudioSink(Sink):
    """Write float32 audio to a file (format from the extension: .wav, .flac, ...).

    The sample rate is ``rate`` or, when 0, the first ``rx_rate`` tag of the stream.
    Samples beyond [-1, 1] are clipped for integer subtypes and counted as ``clipped``.
    Ports: in (float32 scalars, or (channels,) vectors). Latency: none.
    Example: ``out: {type: audio_sink, path: clean.wav, rate: 16000}``
    """

    inp = In("float32", None)
    path = Param(OUTPUT_FILE, doc="audio file to write")
    rate = Param(int, default=0, min=0, unit="Hz", doc="sample rate (0: from rx_rate tag)")
    subtype = Param(str, default="PCM_16", choices=("PCM_16", "PCM_24", "PCM_32", "FLOAT"))

    def output_types(self, in_types):
        t = in_types.get("inp")
        if t is not None and len(t.shape) > 1:
            raise CvstreamError(f"audio items are scalars or (channels,) vectors, got {t}")
        return {}

    def start(self):
        self._fh = None

    def _open(self, x):
        rate = self.rate
        for tag in self.input_tags:
            value = tag_number(tag) if tag.key == "rx_rate" else None
            if tag.key == "rx_rate" and (value is None or value < 1):
                self.count("bad_tag_values")
            elif tag.key == "rx_rate" and not rate:
                rate = int(round(value))
        if not rate:
            raise CvstreamError("sample rate unknown: set 'rate' or feed an rx_rate tag")
        channels = 1 if x.ndim == 1 else x.shape[1]
        try:
            self._fh = sf.SoundFile(self.path, "w", samplerate=rate, channels=channels,
                                    subtype=self.subtype)
        except (RuntimeError, sf.LibsndfileError, TypeError) as exc:
            raise CvstreamError(f"cannot write '{self.path}': {exc}") from None

    def work(self, x):
        if self._fh is None:
            self._open(x)
        if self.subtype != "FLOAT":
            over = np.count_nonzero(np.abs(x) > 1.0)
            if over:
                self.count("clipped", int(over))
                x = np.clip(x, -1.0, 1.0)
        self._fh.write(x)

    def stop(self):
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None
