"""Raw sample files: file_source and file_sink (cf32, ci16, ci8, cu8, f32)."""
from __future__ import annotations

import os

import numpy as np

from cvstream import EndOfStream, In, Out, Param, Sink, Source, register, shared
from cvstream.errors import CvstreamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE

from .formats import FILE_FORMATS, FORMATS


class RawReader:
    """Reads a raw sample file in chunks and decodes it to complex64 / float32 items: all of
    it, or ``count`` items from byte ``start`` (a segment of a SigMF dataset, say);
    ``end`` (bytes) ignores what follows. ``trailing_bytes``: a partial item at the end."""

    def __init__(self, path: str, fmt: str, chunk: int, start: int = 0,
                 count: int | None = None, end: int | None = None):
        self.fmt = FORMATS[fmt]
        self.path = path
        self.chunk = chunk
        size = os.path.getsize(path) if end is None else end
        avail = max(0, size - start)
        self.trailing_bytes = avail % self.fmt.item_bytes if count is None else 0
        avail //= self.fmt.item_bytes
        self.items = avail if count is None else min(avail, count)
        self._fh = open(path, "rb")
        self._start = start
        # float formats are read straight into their stream type
        self._direct = self.fmt.float_type.np_dtype if self.fmt.raw == np.float32 else None
        self.rewind()

    def rewind(self) -> None:
        self._fh.seek(self._start)
        self._left = self.items

    def read(self) -> np.ndarray | None:
        n = min(self.chunk, self._left)
        if n <= 0:
            return None
        # readinto a fresh array: a quarter of np.fromfile's cost per call at 4096 items;
        # float formats land in their stream type, nothing to decode, and in the
        # runtime's shared memory (a block's worker process reads them there, no copy)
        direct = self._direct
        per_item = 1 if direct or not self.fmt.is_complex else 2
        raw = shared.empty(n, direct) if direct else np.empty(n * per_item, self.fmt.raw)
        got = (self._fh.readinto(memoryview(raw).cast("B")) or 0) // self.fmt.item_bytes
        if got == 0:
            return None
        self._left -= got
        return raw[:got] if direct else self.fmt.decode(raw[:got * per_item])

    def close(self) -> None:
        self._fh.close()


@register("file_source")
class FileSource(Source):
    """Read a raw IQ or real sample file, decoding to complex64 or float32.

    Formats: cf32 (GNU Radio .cfile), ci16 (x/32768), ci8 (x/128), cu8 ((x-127.5)/127.5),
    f32. A trailing partial item is counted (``trailing_bytes``), never silently lost.
    Ports: out (complex64 for c* formats, float32 for f32). Latency: none.
    Example: ``src: {type: file_source, path: capture.cu8, format: cu8, repeat: false}``
    """

    out = Out(None, ())
    path = Param(INPUT_FILE, doc="file to read")
    format = Param(str, default="cf32", choices=FILE_FORMATS, doc="sample format")
    repeat = Param(bool, default=False, doc="loop the file forever")
    chunk = Param(int, default=65536, min=1, doc="items per work call")
    rate = Param(float, default=0.0, min=0.0, unit="Hz",
                 doc="sample rate, when known (emitted as an rx_rate tag)")

    def output_types(self, in_types):
        return {"out": FORMATS[self.format].float_type.with_rate(self.rate or None)}

    def total_items(self):
        if self.repeat:
            return None
        try:
            return os.path.getsize(self.path) // FORMATS[self.format].item_bytes
        except OSError:
            return None

    def start(self):
        self._reader = RawReader(self.path, self.format, self.chunk)
        if self._reader.trailing_bytes:
            self.count("trailing_bytes", self._reader.trailing_bytes)
        if self.repeat and self._reader.items == 0:
            raise CvstreamError(f"cannot repeat empty file '{self.path}'")
        if self.rate:
            self.add_tag(0, "rx_rate", float(self.rate))

    def work(self):
        x = self._reader.read()
        if x is None:
            if not self.repeat:
                raise EndOfStream
            self._reader.rewind()
            x = self._reader.read()
        return x

    def stop(self):
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()


@register("file_sink")
class FileSink(Sink):
    """Write samples to a raw file in a chosen sample format.

    Values beyond full scale are clipped and counted as ``clipped``.

    Ports: in (complex64 for c* formats, float32 for f32). Latency: none.
    Example: ``out: {type: file_sink, path: out.cfile, format: cf32}``
    """

    inp = In(None, ())
    path = Param(OUTPUT_FILE, doc="file to write")
    format = Param(str, default="cf32", choices=FILE_FORMATS, doc="sample format")
    append = Param(bool, default=False, doc="append instead of truncating")

    def output_types(self, in_types):
        t = in_types.get("inp")
        want = FORMATS[self.format].float_type
        if t is not None and t != want:
            raise CvstreamError(f"format {self.format} takes {want} items, got {t}")
        return {}

    def start(self):
        self._fmt = FORMATS[self.format]
        self._fh = open(self.path, "ab" if self.append else "wb")

    def work(self, x):
        raw, clipped = self._fmt.encode(x)
        if clipped:
            self.count("clipped", clipped)
        raw.tofile(self._fh)

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
