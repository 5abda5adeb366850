"""Keeps a streaming graph's large arrays out of fresh pages.

A block's call allocates arrays of megabytes (a batch of FFT frames, its powers, the model's
input) and frees them before the next. glibc serves blocks that large with ``mmap`` and
returns them on ``free``, or trims its heap once the free space on top passes a few
megabytes; either way the next call faults in new, zeroed pages, and a graph spends a
tenth of its CPU time in the kernel doing so (``spectrum_segmenter``: README, stop 60). Once
per process, before a graph starts, ``tune`` raises the ``mmap`` threshold to its ceiling
(32 MiB) and the trim threshold to 256 MiB, so those arrays come from and return to the
heap, whose pages stay mapped. The price: up to 256 MiB of freed heap held per arena.

Left alone where the user set glibc's own variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_ARENA_MAX``...: any ``MALLOC_*``), where
``CVSTREAM_MALLOC=default``, and where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20   # glibc's ceiling on 64-bit hosts
TRIM_THRESHOLD = 256 << 20

_done: bool | None = None


def tune() -> bool:
    """Apply the thresholds once per process; whether they are in force."""
    global _done
    if _done is None:
        _done = _apply()
    return _done


def _apply() -> bool:
    if os.environ.get("CVSTREAM_MALLOC") == "default" or \
            any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False   # not glibc: its thresholds mean nothing there
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
