"""Sample formats of SDR files and wires, and the conversions SDR users expect.

cf32 complex float32 (GNU Radio .cfile, USRP), ci16 (USRP, x/32768), ci8 (HackRF, x/128),
cu8 (RTL-SDR, (x-127.5)/127.5), f32 real float32, and real i16/i8/u8 PCM with the same scaling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvstream.dtypes import PortType


@dataclass(frozen=True)
class SampleFormat:
    name: str
    raw: np.dtype          # element type in the file / on the wire
    is_complex: bool
    scale: float           # float value = (raw - bias) / scale
    bias: float = 0.0

    @property
    def item_bytes(self) -> int:
        return self.raw.itemsize * (2 if self.is_complex else 1)

    @property
    def float_type(self) -> PortType:
        """The stream type after decoding: complex64 or float32 items."""
        return PortType("complex64" if self.is_complex else "float32")

    @property
    def wire_type(self) -> PortType:
        """The stream type that carries this format undecoded (e.g. ci16 -> int16[2])."""
        if self.raw == np.float32:
            return self.float_type
        return PortType(self.raw.name, (2,) if self.is_complex else ())

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw elements (flat or [n,2]) -> complex64 or float32 items."""
        if self.raw == np.float32:
            x = np.ascontiguousarray(raw).view(np.float32).reshape(-1)
        else:
            x = raw.reshape(-1).astype(np.float32)
            if self.bias:
                x -= np.float32(self.bias)
            x *= np.float32(1.0 / self.scale)
        return x.view(np.complex64) if self.is_complex else x

    def encode(self, items: np.ndarray) -> tuple[np.ndarray, int]:
        """complex64/float32 items -> raw elements (flat) and the number of clipped values."""
        flat = np.ascontiguousarray(items).view(np.float32).reshape(-1)
        if self.raw == np.float32:
            return flat, 0
        info = np.iinfo(self.raw)
        y = flat * np.float32(self.scale)
        if self.bias:
            y += np.float32(self.bias)
        np.rint(y, out=y)
        clipped = int(np.count_nonzero((y < info.min) | (y > info.max)))
        np.clip(y, info.min, info.max, out=y)
        return y.astype(self.raw), clipped


FORMATS = {
    "cf32": SampleFormat("cf32", np.dtype(np.float32), True, 1.0),
    "ci16": SampleFormat("ci16", np.dtype(np.int16), True, 32768.0),
    "ci8": SampleFormat("ci8", np.dtype(np.int8), True, 128.0),
    "cu8": SampleFormat("cu8", np.dtype(np.uint8), True, 127.5, 127.5),
    "f32": SampleFormat("f32", np.dtype(np.float32), False, 1.0),
    "i16": SampleFormat("i16", np.dtype(np.int16), False, 32768.0),
    "i8": SampleFormat("i8", np.dtype(np.int8), False, 128.0),
    "u8": SampleFormat("u8", np.dtype(np.uint8), False, 127.5, 127.5),
}
FILE_FORMATS = ("cf32", "ci16", "ci8", "cu8", "f32")


def format_of_wire(ptype: PortType) -> SampleFormat | None:
    """The format whose undecoded stream type is ``ptype`` (None if none)."""
    for fmt in FORMATS.values():
        if fmt.wire_type == ptype:
            return fmt
    return None
