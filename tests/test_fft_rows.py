"""The segmenter's row FFTs: FFTW (the ``fftw`` extra) and pocketfft give the same spectra
and powers, across chunk edges, odd row counts and threads."""
import threading

import numpy as np
import pytest
import scipy.fft

from cvstream.blocks import fft_rows
from cvstream.blocks.tile_spectra import centring_window


def signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


def reference(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    return scipy.fft.fft(x.reshape(-1, len(window)).astype(np.complex128) * window, axis=1)


@pytest.fixture(params=["fftw", "pocketfft"])
def backend(request, monkeypatch):
    if request.param == "pocketfft":
        monkeypatch.setattr(fft_rows, "pyfftw", None)
    elif fft_rows.pyfftw is None:
        pytest.skip("pyFFTW (the fftw extra) is not installed")
    assert fft_rows.backend() == request.param
    return request.param


# rows past a chunk (CHUNK // n of them), and a last chunk cut short
@pytest.mark.parametrize("n, rows", [(256, 8 * 32 + 5), (2048, 70), (8192, 9), (1024, 1)])
def test_row_spectra_and_powers_match_a_double_precision_fft(backend, n, rows):
    x, window = signal(n * rows), centring_window(n)
    want = reference(x, window)
    spec = fft_rows.fft_rows(x, window)
    assert spec.dtype == np.complex64 and spec.shape == (rows, n)
    scale = np.abs(want).max()
    np.testing.assert_allclose(spec, want, atol=2e-6 * scale)
    power = fft_rows.power_rows(x, window)
    assert power.dtype == np.float32 and power.shape == (rows, n)
    np.testing.assert_allclose(power, np.abs(want) ** 2, atol=5e-6 * scale ** 2)


def test_each_call_returns_its_own_spectra(backend):
    """A plan's arrays are reused call after call: what a call returned stays as it was."""
    window = centring_window(256)
    a, b = signal(256 * 16, 1), signal(256 * 16, 2)
    first = fft_rows.fft_rows(a, window)
    kept = first.copy()
    fft_rows.fft_rows(b, window)
    fft_rows.power_rows(b, window)
    np.testing.assert_array_equal(first, kept)


def test_spectra_go_where_the_caller_puts_them(backend):
    """``empty`` (as np.empty): the spectra land in its array (a worker's slot, in 64-byte
    steps from a page, as ``process_worker.Arena`` hands them out), the same numbers; an
    array misaligned for FFTW's plans is passed over."""
    import mmap
    from cvstream.blocks.process_worker import Arena
    x, window = signal(256 * 40), centring_window(256)
    memory = memoryview(mmap.mmap(-1, 256 * 40 * 8 + 4096))
    arena = Arena(memory)
    arena.empty(3, np.uint8)   # (the next array starts past the arena's first 64 bytes)
    spec = fft_rows.fft_rows(x, window, arena.empty)
    assert np.shares_memory(spec, np.frombuffer(memory, np.uint8)) and arena.used > x.nbytes
    np.testing.assert_array_equal(spec, fft_rows.fft_rows(x, window))
    if backend == "fftw":
        raw = np.empty(x.nbytes + 8, np.uint8)
        skewed = raw[4:4 + x.nbytes].view(np.complex64)   # 4 bytes off any alignment
        spec = fft_rows.fft_rows(x, window, lambda shape, dtype: skewed.reshape(shape))
        assert not np.shares_memory(spec, skewed)
        np.testing.assert_array_equal(spec, fft_rows.fft_rows(x, window))


def test_threads_running_the_same_sizes_at_once_get_their_own_results(backend):
    window = centring_window(1024)
    inputs = [signal(1024 * 96, k) for k in range(4)]
    want = [np.abs(reference(x, window)) ** 2 for x in inputs]
    got = [None] * len(inputs)

    def run(k):
        for _ in range(20):
            got[k] = fft_rows.power_rows(inputs[k], window)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for power, expected in zip(got, want):
        np.testing.assert_allclose(power, expected, atol=5e-6 * expected.max())
