"""Windowed FFTs of a complex64 signal's consecutive ``n``-sample rows, the segmenter's
hot loop: FFTW plans (pyFFTW, the ``fftw`` extra) where installed, about twice as fast on
the segmenter's sizes; scipy.fft's pocketfft otherwise, or where the environment sets
``CVSTREAM_FFT=pocketfft``. FFTW runs CHUNK samples at a time through plans of its own
per thread (their arrays stay in a core's cache), and ``power_rows`` squares each chunk's
bins while they are there."""
from __future__ import annotations

import os
import threading

import numpy as np

try:
    import pyfftw
except ImportError:   # the extra is not installed: pocketfft
    pyfftw = None
if os.environ.get("CVSTREAM_FFT") == "pocketfft":
    pyfftw = None

#: samples a plan transforms at a time (8 tiles of 8192: 512 KB in, 512 KB out)
CHUNK = 1 << 16
PLANS = 16   # plans a thread keeps (the oldest goes): a few sizes and their last chunks
_PLANNING = threading.Lock()   # FFTW's planner is not thread-safe; running plans is
_plans = threading.local()


def backend() -> str:
    """The FFT library in use: "fftw" or "pocketfft"."""
    return "fftw" if pyfftw is not None else "pocketfft"


def _plan(rows: int, n: int, scratch: bool):
    """This thread's FFTW plan for (rows, n) complex64 rows, with an input array of its
    own, and an output array of its own where ``scratch`` (else each call names one)."""
    cache = getattr(_plans, "cache", None)
    if cache is None:
        cache = _plans.cache = {}
    plan = cache.get((rows, n, scratch))
    if plan is None:
        if len(cache) >= PLANS:
            del cache[next(iter(cache))]
        with _PLANNING:
            inp = pyfftw.empty_aligned((rows, n), np.complex64)
            out = pyfftw.empty_aligned((rows, n), np.complex64)
            plan = cache[rows, n, scratch] = pyfftw.FFTW(
                inp, out, axes=(1,), flags=("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT"), threads=1)
    return plan


def _chunks(x: np.ndarray, n: int):
    """(first row, the rows) of x as (rows, n), CHUNK samples (or the rest) at a time."""
    rows = x.reshape(-1, n)
    step = max(CHUNK // n, 1)
    for a in range(0, len(rows), step):
        yield a, rows[a:a + step]


def fft_rows(x: np.ndarray, window: np.ndarray, empty=None) -> np.ndarray:
    """(rows, n) complex64: the FFT of each n-sample row of x times ``window`` (n,);
    ``empty`` (as np.empty): where the result goes, if aligned as FFTW's plans need (else
    into an array of FFTW's own)."""
    n = len(window)
    if pyfftw is None:
        import scipy.fft   # (kept off the worker's start where pyFFTW runs)
        spec = scipy.fft.fft(x.reshape(-1, n) * window, axis=1,
                             overwrite_x=True).astype(np.complex64, copy=False)
        if empty is None:
            return spec
        out = empty(spec.shape, np.complex64)
        out[...] = spec
        return out
    out = empty((x.size // n, n), np.complex64) if empty is not None else None
    if out is None or not pyfftw.is_byte_aligned(out):
        out = pyfftw.empty_aligned((x.size // n, n), np.complex64)
    for a, rows in _chunks(x, n):
        plan = _plan(len(rows), n, scratch=False)
        np.multiply(rows, window, out=plan.input_array)
        plan(output_array=out[a:a + len(rows)])
    return out


def power_rows(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """(rows, n) float32: |FFT|^2 of each n-sample row of x times ``window`` (n,)."""
    n = len(window)
    if pyfftw is None:
        import scipy.fft   # (kept off the worker's start where pyFFTW runs)
        spec = scipy.fft.fft(x.reshape(-1, n) * window, axis=1, overwrite_x=True)
        return squared(spec, in_place=True)
    power = np.empty((x.size // n, n), np.float32)
    for a, rows in _chunks(x, n):
        plan = _plan(len(rows), n, scratch=True)
        np.multiply(rows, window, out=plan.input_array)
        squared(plan(), power[a:a + len(rows)], in_place=True)
    return power


def squared(spec: np.ndarray, out: np.ndarray | None = None, in_place: bool = False
            ) -> np.ndarray:
    """|spec|^2 of a complex array whose last axis is contiguous (into ``out`` where given),
    from its (real, imag) pairs: squared in place where ``in_place`` (spec is spent)."""
    pairs = spec.view(spec.real.dtype)
    if in_place:
        pairs *= pairs
    else:
        pairs = pairs * pairs
    return np.add(pairs[..., 0::2], pairs[..., 1::2], out=out)
