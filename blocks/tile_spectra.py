"""The segmenter's view of its samples: STFT tiles (the model's input, their cell power and
noise floors) and the finer PSDs of the same samples that settle each detection's edges.
Stateless: ``SpectrumSegmenter.compute`` runs it, on replicas too."""
from __future__ import annotations

import functools

import numpy as np

from .fft_rows import fft_rows, power_rows, squared

FLOOR_QUANTILE = 0.2
#: a contract's ``preprocess.compand`` where the block compands the model's input
COMPAND = "log1p"
#: white-noise periodogram cells are exponential: their q-quantile is -ln(1 - q) x the mean
FLOOR_RATIO = float(-np.log(1 - FLOOR_QUANTILE))


def noise_floor(tiles: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
    """The noise power per cell of each (frames, fft) tile, from the 20th percentile of the
    cell powers, which stays on the noise even when signals fill most of the band (a median
    would not above 50 %); taken over every other frame: half the work, the same estimate.
    ``cells``: the tiles' cell powers (``squared``), where at hand."""
    sample = squared(tiles[:, ::2]) if cells is None else cells[:, ::2]
    sample = sample.reshape(len(sample), -1)
    k = int(FLOOR_QUANTILE * sample.shape[1])
    return np.partition(sample, k, axis=1)[:, k] / FLOOR_RATIO + 1e-20


def noise_floor_per_bin(tiles: np.ndarray, rise_db: float = 3.0, rounds: int = 4,
                        cells: np.ndarray | None = None) -> np.ndarray:
    """The noise power of each bin of each (frames, fft) tile, as a floor that may tilt or
    bow across the band (a receiver's filters, a tilted front end): per bin the 20th
    percentile of the tile's frames (every other one), then a quadratic in dB across the
    band fitted to those levels, refitted without the bins standing ``rise_db`` above it
    (signals), ``rounds`` times. (tiles, fft). ``cells``: the tiles' cell powers
    (``squared``), where at hand."""
    sample = squared(tiles[:, ::2]) if cells is None else cells[:, ::2]
    k = int(FLOOR_QUANTILE * sample.shape[1])
    # (each bin's frames made contiguous first: sorting them so beats partitioning a
    # strided axis, for the same order statistic)
    low = np.sort(np.ascontiguousarray(sample.transpose(0, 2, 1)), axis=2)[..., k]
    db = 10 * np.log10(low / FLOOR_RATIO + 1e-20)
    x = np.linspace(-1.0, 1.0, tiles.shape[2])
    basis = np.stack([np.ones_like(x), x, x * x])                    # (3, fft)
    products = (basis[:, None] * basis[None]).reshape(9, -1).T       # (fft, 9)
    keep = np.ones(db.shape, bool)
    for _ in range(rounds):
        w = keep.astype(np.float64)
        gram = (w @ products).reshape(-1, 3, 3)
        rhs = ((w * db) @ basis.T)[..., None]
        coef = np.linalg.solve(gram + 1e-9 * np.eye(3), rhs)[..., 0]
        fit = coef @ basis
        keep = db < fit + rise_db
        keep[keep.sum(axis=1) < tiles.shape[2] // 8] = True         # mostly signal: all bins
    return (10 ** (fit / 10)).astype(np.float32)


def normalize_tiles(tiles: np.ndarray, per_bin: bool = False) -> np.ndarray:
    """Scale each (frames, fft) tile so that noise cells have unit power, as the model was
    trained: one scale per tile (contract normalization ``noise_floor``) or one per bin
    (``noise_floor_per_bin``)."""
    if per_bin:
        return tiles * (1 / np.sqrt(noise_floor_per_bin(tiles)))[:, None, :]
    return tiles * (1 / np.sqrt(noise_floor(tiles))).astype(np.float32)[:, None, None]


def unit_hann(n: int) -> np.ndarray:
    """A symmetric Hann window scaled to unit energy (white noise keeps its power per bin)."""
    w = np.hanning(n)
    return (w / np.sqrt(np.sum(w ** 2))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def centring_window(n: int) -> np.ndarray:
    """unit_hann(n) x (-1)^k: its FFT comes out DC-centred (the spectrum shifted by n/2,
    which is fftshift for even n) without a second pass over the data. Shared, read-only."""
    w = unit_hann(n) * np.where(np.arange(n) % 2, -1, 1).astype(np.float32)
    w.flags.writeable = False
    return w


def compand(tiles: np.ndarray, power: np.ndarray | None = None) -> np.ndarray:
    """The model's input where its contract says ``preprocess.compand: log1p``: each cell
    z of ``tiles`` ((..., 2) float32 pairs, as ``TileSpectra.prepare`` returns them) as
    z log(1 + |z|) / |z|, |z| with 1e-8 under its root (the models' ``LogCompander``, which
    the export leaves out of the graph: ONNX Runtime spent a fifth of the network's time on
    its eight passes over the split parts). ``power``: |z|^2 of the cells, where at hand
    (spent). A new array; ``tiles`` stay as they are."""
    z = tiles.view(np.complex64)
    mag = squared(z) if power is None else power.reshape(z.shape)
    mag += np.float32(1e-8)
    np.sqrt(mag, out=mag)
    scale = mag + np.float32(1)
    np.log(scale, out=scale)
    scale /= mag
    return (z * scale).view(np.float32)


class TileSpectra:
    """Tiles of ``frames`` DC-centred ``fft``-point spectra (unit-energy Hann windows, no
    overlap) and PSDs of the same samples at finer resolutions. ``per_bin``: the model
    takes tiles normalized per bin (``noise_floor_per_bin``), else per tile; ``bin_floors``:
    ``prepare`` returns each bin's floor (the per-bin model or the energy test needs it);
    ``refine``: the FFT size of the PSD that settles edges (0: none), ``zoom`` that of the
    finer view that splits close neighbours (0: none); ``compand``: the model takes its
    tiles companded (``compand``)."""

    def __init__(self, fft: int, frames: int, per_bin: bool, bin_floors: bool,
                 refine: int = 0, zoom: int = 0, compand: bool = False):
        self.fft, self.frames, self.decim = fft, frames, fft * frames
        self.per_bin, self.bin_floors = per_bin, bin_floors
        self.refine, self.zoom, self.compand = refine, zoom, compand
        self.window = centring_window(fft)

    def prepare(self, x: np.ndarray, empty=None) -> tuple[np.ndarray, ...]:
        """Whole tiles of x scaled to their noise (each bin's or each tile's, as the model
        takes them), the model's input (those tiles, or where it takes them companded a
        companded copy), the (tiles, fft) mean cell power in units of the noise floor, each
        tile's noise floor and each bin's floor in units of its tile's
        (``noise_floor_per_bin``; None where neither the model nor the energy test needs
        it). ``empty`` (as np.empty): where the tiles go."""
        tiles = fft_rows(x, self.window, empty).reshape(-1, self.frames, self.fft)
        cells = squared(tiles)
        floor = noise_floor(tiles, cells)
        power = cells.sum(axis=1)
        power /= self.frames * floor[:, None]
        bins = noise_floor_per_bin(tiles, cells=cells) if self.bin_floors else None
        if self.per_bin:   # the model's input flat across the band; the rest per tile
            noise = bins[:, None, :]
            tiles *= (1 / np.sqrt(bins))[:, None, :]
        else:
            noise = floor[:, None, None]
            tiles *= (1 / np.sqrt(floor)).astype(np.float32)[:, None, None]
        pairs = tiles.view(np.float32).reshape(*tiles.shape, 2)
        # (the scaled cells' power from their power before: no pass over the pairs again)
        model = compand(pairs, np.divide(cells, noise, out=cells)) if self.compand else pairs
        if bins is not None:
            bins /= floor[:, None]
        return pairs, model, power, floor, bins

    def fine_psd(self, x: np.ndarray, floor: np.ndarray, size: int = 0,
                 empty=None) -> np.ndarray:
        """(tiles, size) PSD of whole tiles of x at a finer resolution (``refine`` points by
        default), in units of each tile's noise floor (unit-energy windows keep white noise
        at the same power per bin at any FFT size, so the coarse floor carries over).
        ``empty`` (as np.empty): where it goes."""
        size = size or self.refine
        fine = power_rows(x, centring_window(size)).reshape(len(floor), -1, size)
        # one periodogram a tile (the tile-long PSD) needs no mean
        mean = fine[:, 0] if fine.shape[1] == 1 else fine.mean(axis=1)
        out = None if empty is None else empty(mean.shape, np.result_type(mean, floor))
        return np.divide(mean, floor[:, None], out=out)

    def track_psds(self, x, floor, whole, which: np.ndarray, empty=None) -> tuple | None:
        """For the tiles ``which``, the ``refine``-point PSD and, where ``valley_db`` splits
        on a view ZOOM times finer, that view and the tile-long PSD (``whole`` itself where
        given), each as (tiles, size) with the other rows unset; and ``which``. The tiles
        that hold a detection feed them to its track. None without ``refine``. ``empty``
        (as np.empty): where the rows go."""
        if not self.refine:
            return None
        every = bool(which.all())   # (a busy band: no rows to pick out and put back)
        x = x.reshape(len(floor), -1) if every else x.reshape(len(floor), -1)[which]
        sizes = [self.refine]
        if self.zoom:
            sizes += [self.zoom] if whole is not None else [self.zoom, self.decim]
        rows = []
        for size in sizes:
            if every:
                rows.append(self.fine_psd(x, floor, size, empty))
                continue
            psd = self.fine_psd(x, floor[which], size)
            row = (empty or np.empty)((len(floor), size), psd.dtype)
            row[which] = psd
            rows.append(row)
        if self.zoom and whole is not None:   # the tile-long PSDs at hand: every row set
            rows.append(whole)
        return which, *rows

    def busy_psds(self, busy: list, x, floor, whole, psds: tuple | None) -> list:
        """The tracks' PSDs (``track_psds``' rows) of the tiles ``busy``: those already
        taken (``psds``, ``track_psds``' result on another thread, or None), the rest taken
        now into the same rows."""
        need = np.zeros(len(floor), bool)
        need[busy] = True
        if psds is not None:
            need &= ~psds[0]
            if not need.any():
                return psds[1:]
        more = self.track_psds(x, floor, whole, need)[1:]
        if psds is None:
            return more
        for row, extra in zip(psds[1:], more):
            if row is not extra:   # (``whole``: every row already set)
                row[need] = extra[need]
        return psds[1:]
