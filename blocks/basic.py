"""Basic stream blocks: head, throttle, multiply_const, convert, keep_one_in_n, repeat."""
from __future__ import annotations

import time

import numpy as np

from cvstream import In, Out, Param, RateBlock, SyncBlock, register
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError

from .formats import FORMATS, format_of_wire


@register("head")
class Head(SyncBlock):
    """Pass the first ``n`` items, then end the stream.

    Ports: in (any) -> out (same type). Latency: none.
    Example: ``first: {type: head, n: 1000000}``
    """

    inp = In(None, None, doc="items")
    out = Out(None, None, like="inp", doc="the first n items")
    n = Param(int, doc="items to pass", min=0)

    def start(self):
        self._left = self.n

    def work(self, x):
        if len(x) >= self._left:
            self.end_stream()
        take = x[:self._left]
        self._left -= len(take)
        return take


@register("throttle")
class Throttle(RateBlock):
    """Pace a stream to ``rate`` items per second (for file playback and demos).

    Ports: in (any) -> out (same type). Latency: releases at most 10 ms of items at a time.
    Example: ``pace: {type: throttle, rate: 48000}``
    """

    blocking = True  # it sleeps
    inp = In(None, None)
    out = Out(None, None, like="inp")
    rate = Param(float, doc="items per second", unit="items/s", min=1e-3)

    def check(self):
        self.max_chunks = max(1, int(self.rate * 0.01))

    def start(self):
        self._t0 = None
        self._sent = 0

    def work(self, x):
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._sent / self.rate
        while due > now and not self.stopping:
            time.sleep(min(due - now, 0.1))
            now = time.monotonic()
        self._sent += len(x)
        return x


@register("multiply_const")
class MultiplyConst(SyncBlock):
    """Scale every sample by a constant.

    Ports: in (complex64 or float32, any item shape) -> out (same type). Latency: none.
    Example: ``gain: {type: multiply_const, k: 0.5}`` (``k: 1+1j`` for complex streams)
    """

    inp = In(None, None)
    out = Out(None, None, like="inp")
    k = Param(complex, default=1.0, doc="the constant (complex for complex streams)")

    def output_types(self, in_types):
        t = in_types.get("inp")
        if t is not None and t.dtype not in ("complex64", "float32"):
            raise CvstreamError(f"multiply_const takes complex64 or float32, got {t} "
                                "(add a convert block)")
        if t is not None and t.dtype == "float32" and self.k.imag:
            raise CvstreamError(f"parameter 'k': complex constant {self.k} on a real stream")
        return super().output_types(in_types)

    inplace = True

    def work(self, x):
        k = self.__dict__.get("_k_as")
        if k is None or k.dtype is not x.dtype:  # the constant in the stream's own type
            k = self._k_as = x.dtype.type(self.k if x.dtype == np.complex64 else self.k.real)
        return np.multiply(x, k, out=x if x.flags.writeable else None)


@register("convert")
class Convert(SyncBlock):
    """Convert between sample formats with the scaling SDR users expect.

    ci16 x/32768, ci8 x/128, cu8 (x-127.5)/127.5; i16/i8/u8 the same for real samples.
    Integer complex formats travel as items of two integers (e.g. ci16 = int16[2]).
    Complex to real needs ``part`` (real, imag, mag, phase).
    Ports: in (complex64, float32 or an integer format) -> out (format ``to``). Latency: none.
    Example: ``to_ci16: {type: convert, to: ci16}``
    """

    inp = In(None, None)
    out = Out(None, None)
    to = Param(str, choices=tuple(FORMATS), doc="output sample format")
    part = Param(str, default=None, choices=("real", "imag", "mag", "phase"),
                 doc="what to keep when converting complex to real")

    def output_types(self, in_types):
        t = in_types.get("inp")
        if t is None:
            return {"out": None}
        self._src = format_of_wire(t)
        if self._src is None:
            raise CvstreamError(f"convert cannot read {t}")
        self._dst = FORMATS[self.to]
        if self._src.is_complex and not self._dst.is_complex and self.part is None:
            raise CvstreamError("parameter 'part': needed to convert complex to real "
                                "(real, imag, mag or phase)")
        return self._propagate_rate({"out": self._dst.wire_type}, in_types)

    def start(self):
        self.clipped = 0

    def work(self, x):
        src, dst = self._src, self._dst
        y = src.decode(x)
        if src.is_complex and not dst.is_complex:
            y = {"real": np.real, "imag": np.imag, "mag": np.abs,
                 "phase": np.angle}[self.part](y).astype(np.float32)
        elif dst.is_complex and not src.is_complex:
            y = y.astype(np.complex64)
        raw, clipped = dst.encode(y)
        if clipped:
            self.count("clipped", clipped)
        shape = dst.wire_type.shape
        return raw.view(dst.wire_type.np_dtype).reshape(len(x), *shape)

    def process(self, x):
        x = np.asarray(x)
        if not hasattr(self, "_src"):
            self.output_types({"inp": PortType(x.dtype.name, x.shape[1:])})
        return super().process(x)


@register("keep_one_in_n")
class KeepOneInN(RateBlock):
    """Decimate without filtering: keep the first item of every ``n``.

    Ports: in (any) -> out (same type). Tags are re-based to output offsets (offset // n).
    Example: ``decim: {type: keep_one_in_n, n: 4}``
    """

    inp = In(None, None)
    out = Out(None, None, like="inp")
    n = Param(int, doc="decimation factor", min=1)

    def check(self):
        self.decim = self.n

    def work(self, x):
        return x[::self.n]


@register("repeat")
class Repeat(RateBlock):
    """Interpolate by repeating every item ``n`` times.

    Ports: in (any) -> out (same type). Tags are re-based to output offsets (offset * n).
    Example: ``up: {type: repeat, n: 2}``
    """

    inp = In(None, None)
    out = Out(None, None, like="inp")
    n = Param(int, doc="interpolation factor", min=1)

    def check(self):
        self.interp = self.n

    def work(self, x):
        return np.repeat(x, self.n, axis=0)
