"""NumPy .npy files: npy_source (items along axis 0) and npy_sink (streamed to disk)."""
from __future__ import annotations

import ast

import numpy as np

from cvstream import EndOfStream, In, Out, Param, Sink, Source, register
from cvstream.dtypes import DTYPES, PortType
from cvstream.errors import CvstreamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE

#: wider file dtypes accepted and narrowed on read
NARROW = {np.dtype(np.complex128): "complex64", np.dtype(np.float64): "float32"}
HEADER_BYTES = 128  # fixed header size so the final shape can be written in place


def npy_item_type(path: str) -> PortType:
    """The stream type of a .npy file's items (its shape after axis 0)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CvstreamError(f"'{path}' is not a readable .npy file: {exc}") from None
    if arr.ndim < 1:
        raise CvstreamError(f"'{path}' holds a scalar, not a sequence of items")
    name = NARROW.get(arr.dtype, arr.dtype.name)
    if name not in DTYPES:
        raise CvstreamError(f"'{path}' holds {arr.dtype}; supported: "
                            f"{', '.join(DTYPES)} (and complex128/float64, narrowed)")
    return PortType(name, tuple(arr.shape[1:]))


@register("npy_source")
class NpySource(Source):
    """Stream the items of a .npy array along its first axis (memory-mapped).

    complex128 and float64 files are narrowed to complex64 / float32. The item shape is the
    array's shape after axis 0 (e.g. radar sweeps (n_sweeps, n_freq, n_tx, n_rx)).
    Ports: out (dtype and shape from the file). Latency: none.
    Example: ``sweeps: {type: npy_source, path: sweeps.npy, chunk: 1}``
    """

    out = Out(None, None)
    path = Param(INPUT_FILE, doc=".npy file to read")
    chunk = Param(int, default=65536, min=1, doc="items per work call")
    repeat = Param(bool, default=False, doc="loop forever")
    rate = Param(float, default=0.0, min=0.0, unit="items/s",
                 doc="item rate, when known (emitted as an rx_rate tag)")

    def output_types(self, in_types):
        self._type = npy_item_type(self.path)
        if np.load(self.path, mmap_mode="r", allow_pickle=False).shape[0] == 0:
            raise CvstreamError(f"'{self.path}' holds no items (an empty array of "
                                f"{self._type})")
        return {"out": self._type.with_rate(self.rate or None)}

    def total_items(self):
        return None if self.repeat else len(self._arr) if hasattr(self, "_arr") else None

    def start(self):
        if not hasattr(self, "_type"):
            self.output_types({})
        self._arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self._pos = 0
        if self.repeat and len(self._arr) == 0:
            raise CvstreamError(f"cannot repeat empty file '{self.path}'")
        if self.rate:
            self.add_tag(0, "rx_rate", float(self.rate))

    def work(self):
        if self._pos >= len(self._arr):
            if not self.repeat:
                raise EndOfStream
            self._pos = 0
        part = self._arr[self._pos:self._pos + self.chunk]
        self._pos += len(part)
        return np.array(part, dtype=self._type.np_dtype)


@register("npy_sink")
class NpySink(Sink):
    """Write all items to one .npy file, streamed (the header is finalised at the end).

    Ports: in (any type and item shape). Example: ``imgs: {type: npy_sink, path: out.npy}``
    """

    inp = In(None, None)
    path = Param(OUTPUT_FILE, doc=".npy file to write")

    def start(self):
        self._fh = open(self.path, "wb")
        self._fh.write(b"\0" * HEADER_BYTES)
        self._count = 0
        self._item = None

    def work(self, x):
        if self._item is None:
            self._item = (x.dtype, x.shape[1:])
        np.ascontiguousarray(x).tofile(self._fh)
        self._count += len(x)

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is None or fh.closed:
            return
        dtype, shape = self._item or (np.dtype(np.float32), ())
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (self._count, *shape)}
        text = repr(header).encode("latin1")
        ast.literal_eval(text.decode())  # the header must stay a Python literal
        body = HEADER_BYTES - 10
        if len(text) + 1 > body:
            raise CvstreamError(f"npy header too long for shape {header['shape']}")
        fh.seek(0)
        fh.write(b"\x93NUMPY\x01\x00" + body.to_bytes(2, "little"))
        fh.write(text + b" " * (body - len(text) - 1) + b"\n")
        fh.close()
