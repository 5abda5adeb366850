"""spectrum_segmenter: a complex-valued CNN over STFT tiles -> detections with labels."""
from __future__ import annotations

import copy
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft

from cvstream import In, MsgOut, Param, RateBlock, register
from cvstream.errors import ParamError

from .detections import ZOOM, refine_edges, sibling_lines, time_segments
from .family_features import FAMILY_FEATURES, family_features, family_probabilities
from .inner_signals import raised_plateaus, raised_since, roll_off_edges
from .lines import LINE_MIN_BLOCKS
from .narrow_tracks import SENT, NarrowTracks
from .narrowband import (FOLLOW_SUBBINS, CellTones, LongTones, NarrowbandFinder,
                         merge_lines)
from .onnx_model import load_model, make_session
from .repeats import Repeats
from .tracks import (RadioContext, Tracker, band_bins, bin_edges, dilate_rows, row_runs,
                     to_message)

FLOOR_QUANTILE = 0.2
INSIDE_RISE = 30.0  # a narrow peak on another signal: 15 dB over its surroundings
QUIET_AROUND = 1.5  # mean power around a peak (noise floor 1) below which it stands alone
FOLLOW_RISE = 4.0  # a tone followed beside a signal: 6 dB over the quieter side's cell
#: white-noise periodogram cells are exponential: their q-quantile is -ln(1 - q) x the mean
FLOOR_RATIO = float(-np.log(1 - FLOOR_QUANTILE))
#: the energy test (``energy_sigma``) looks this many cells or more away from the model's own
ENERGY_GUARD = 4
#: and at cells under this power over their bin's floor (10 dB): what stands higher and the
#: model leaves is a strong signal's skirt or line, not a weak signal it missed
ENERGY_CAP = 10.0
#: nor at a strong signal's IQ image: receivers reject images by some 25-40 dB
IMAGE_REJECTION_DB = 25.0
#: a cell the energy test finds alone holds a line (a CW tone), not a narrow signal, where
#: its strongest bin of the tile-long PSD stands this many times its median bin
LINE_PEAK = 15.0
#: a line of the fine view is a signal when it holds for this many tiles (a carrier holds;
#: a noise peak, a weak signal's flicker or a burst's one spectral line does not), as a
#: line that ``refine_edges`` cuts beside another part of a model's track must
NARROW_MIN_TILES = LINE_MIN_BLOCKS
#: ``weak_tones`` averages the tile-long PSDs over up to this many tiles
LONG_TILES = 16
#: the tones' search (the cells it follows, the weak tones' looks every STRIDE tiles)
#: reads the stream in groups of this many tiles from its start (a multiple of STRIDE); a
#: call's tiles past its last whole group wait for the next call, so what the block finds
#: does not depend on how the stream was cut into calls
TONE_GROUP = 8
#: families whose spectrum is flat across their band: a plateau raised inside one is another
#: signal (``_inner_signals``); an FSK's lobes, an FM's lines or a chirp's sweep are their own
FLAT_FAMILIES = ("ofdm", "qam", "psk")


def noise_floor(tiles: np.ndarray) -> np.ndarray:
    """The noise power per cell of each (frames, fft) tile, from the 20th percentile of the
    cell powers, which stays on the noise even when signals fill most of the band (a median
    would not above 50 %); taken over every other frame: half the work, the same estimate."""
    sample = tiles[:, ::2].reshape(len(tiles), -1)
    power = sample.real ** 2 + sample.imag ** 2
    k = int(FLOOR_QUANTILE * power.shape[1])
    return np.partition(power, k, axis=1)[:, k] / FLOOR_RATIO + 1e-20


def noise_floor_per_bin(tiles: np.ndarray, rise_db: float = 3.0, rounds: int = 4
                        ) -> np.ndarray:
    """The noise power of each bin of each (frames, fft) tile, as a floor that may tilt or
    bow across the band (a receiver's filters, a tilted front end): per bin the 20th
    percentile of the tile's frames (every other one), then a quadratic in dB across the
    band fitted to those levels, refitted without the bins standing ``rise_db`` above it
    (signals), ``rounds`` times. (tiles, fft)."""
    sample = tiles[:, ::2]
    power = sample.real ** 2 + sample.imag ** 2
    k = int(FLOOR_QUANTILE * power.shape[1])
    db = 10 * np.log10(np.partition(power, k, axis=1)[:, k] / FLOOR_RATIO + 1e-20)
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


def presence_of(logits: np.ndarray) -> np.ndarray:
    """(tiles, fft) presence probability of each cell from the model's logits."""
    return 1 / (1 + np.exp(-logits[:, 0]))


@functools.lru_cache(maxsize=8)
def centring_window(n: int) -> np.ndarray:
    """unit_hann(n) x (-1)^k: its FFT comes out DC-centred (the spectrum shifted by n/2,
    which is fftshift for even n) without a second pass over the data. Shared, read-only."""
    w = unit_hann(n) * np.where(np.arange(n) % 2, -1, 1).astype(np.float32)
    w.flags.writeable = False
    return w


@register("spectrum_segmenter")
class SpectrumSegmenter(RateBlock):
    """Find and classify the signals in wideband IQ with a complex-valued segmentation model.

    Cuts the stream into tiles of ``frames`` FFTs (sizes from the model's contract; the
    model works in normalized frequency, so any sample rate is served), runs the model on up
    to ``max_batch`` tiles per call, and turns its per-cell presence and class outputs into
    detections: bins above ``threshold`` (smoothed over two tiles), and cells away from
    those whose power stands ``energy_sigma`` deviations over their bin's noise floor (weak
    signals the model leaves), merged into runs, labelled
    by the run's mean class scores, followed across tiles (``hold`` tiles of absence
    allowed; tracks shorter than ``min_tiles``, and those shorter than ``weak_tiles`` that
    never stand ``weak_snr_db`` over the noise, are counted as ``short_tracks``, not sent).
    When a track ends, a finer PSD (``refine``-point FFTs of the same samples, summed over
    the track's tiles) settles its frequency edges: the bins above the noise near the coarse
    edges (and a wider window, where a neighbour joined the track for part of its tiles),
    split where a gap shows two neighbours, cut again on a PSD twice as fine where
    strong neighbours touch (``valley_db``) and where the tiles that hold the two sides
    differ (a burst beside a continuous signal), comb-like line spectra kept whole (not
    where two mirrored lines differ in time: CW tones at one spacing), each
    trimmed to its 99.9 % power bandwidth on the finer PSD, neighbouring parts with one
    constant envelope joined (an FSK's lobes), a CW tone at a part's edge that is there in
    tiles where the rest is not (beside a flat spectrum, also a burst the rest outlasts)
    and one in the valley between two flat spectra cut off as detections of their own
    (where held for NARROW_MIN_TILES tiles, as the narrow view's lines);
    each detection then spans the tiles where its own band holds it
    (``detections.refine_edges``). Two tracks can follow one signal for a while and settle
    to its band: a detection that another one repeats (half its time or more, frequency
    IoU REPEAT_IOU) is counted as ``repeated_detections``, not sent; one within the band
    of a track still open waits for that track's detections (``repeats.Repeats``). The
    ``family`` classifier then names each detection's modulation family from the shape of
    that fine PSD, its bandwidth, how its band moved and five statistics of its envelope and
    instantaneous frequency in its band, taken on the samples of its first tiles (more of
    them for a narrow band; a detection cut from a track, on its own tiles;
    ``family_features.family_features``; with ``family: ""`` or ``refine: 0`` the label is the
    cell votes). Its probabilities are
    calibrated (the contract's ``postprocess.temperature``, fitted on held-out
    detections); below ``min_label_confidence`` the label is ``unknown``. A ``tone`` cut
    from the same track as an ``analog`` or ``fsk`` detection, beside it, that starts or
    ends with it is that signal's own line (an FM's outer line): counted as
    ``sibling_lines``, not sent (``detections.sibling_lines``). Inside a detection of a
    flat-topped family (FLAT_FAMILIES: OFDM, QAM, PSK), a flat plateau standing 3 dB or
    more over its level on both sides with steep edges is a narrow signal inside it, sent
    as a detection of its own over the same tiles (and the track's tiles before them where
    its band stood alone, ``inner_signals.raised_since``), classified, and reported out over
    its roll-off (counted as ``inner_signals``; ``inner_signals.raised_plateaus``,
    ``roll_off_edges``); where it outlasts the wide one, the detection in its band that
    starts as the wide one ends continues it (counted as ``continued_inner``, not sent).
    Detection messages as cfar_detector's, with ``label`` the modulation family,
    ``label_confidence`` the classifier's probability of it (``label_guess`` the best
    family where ``unknown``) and ``confidence`` the peak presence probability.
    The FFTs and the model run on a worker thread (``compute``), overlapping the last
    batch's detections here; the finer PSDs of the tiles that hold a detection go to
    whichever of the two threads waits on the other (the same numbers either way); with
    ``replicas: N`` the FFTs and the model run on N copies (``compute``), the detections
    in stream order here (``absorb``). ``tones`` (on by default) zooms the cells the
    model leaves whose power stands out, each across its tile's frames, to a tile-long
    FFT's resolution, and follows the CW tones it finds there as narrow detections, one
    bin of that FFT wide (``narrowband.CellTones``; counters as for ``narrow``; a tone
    held for NARROW_MIN_TILES tiles stays followed while a signal comes beside it);
    ``weak_tones`` (on by default) adds those too weak for one tile, on tile-long PSDs
    averaged over up to LONG_TILES tiles (``narrowband.LongTones``: late by up to that
    many tiles where such a tone starts). The tones' search reads the stream in groups of
    TONE_GROUP tiles from its start, and a call's tiles past its last whole group wait for
    the next call: the detections are the same however the stream arrives (a file's
    chunks, ZeroMQ frames, replicas' calls).
    ``narrow: true`` (which replaces ``tones``) adds a tile-long FFT view for
    signals narrower than the model's cells (``narrowband.py``: lines that hold for
    NARROW_MIN_TILES tiles, not a strong line's IQ image; it runs on the model's worker
    thread; counters ``narrow_detections`` and ``narrow_inside``, those inside a detection
    of the model's, not sent; a line of the model's that a narrow track followed over as
    long a time is that track's, with the line's edges, and counted in
    ``repeated_detections``; two narrow tracks that share their time, mirrored about the
    centre of a wider detection of the model's, are that signal's own lines (an FM's
    pair at or past the edges of its 99 % band), counted as ``mirror_lines``, not sent: a
    narrow track that may be one of such a pair waits for the model's tracks that hold the
    pair's midpoint; ``narrow_tracks.NarrowTracks``); ``energy_cells`` counts the cells
    the energy test added.
    Ports: in (complex64) -> detections (message). Latency: one tile (fft x frames samples)
    to fill (with ``tones``, up to a group of TONE_GROUP), then up to one batch of
    processing; detections are sent when a signal ends
    (one within the band of a track still open, when that track ends).
    Example: ``seg: {type: spectrum_segmenter, model: "builtin:spectrum_segmenter"}``
    """

    blocking = True  # waits on its model worker thread

    inp = In("complex64")
    detections = MsgOut(optional=False)
    model = Param(str, default="builtin:spectrum_segmenter",
                  doc="a spectrum_segmentation model (path or builtin:NAME)")
    threshold = Param(float, default=0.5, min=0.0, max=1.0, doc="presence probability")
    merge_gap = Param(int, default=1, min=0, doc="join runs this many bins apart")
    min_bins = Param(int, default=1, min=1, doc="ignore runs narrower than this")
    hold = Param(int, default=6, min=0, doc="tiles a signal may vanish and still continue")
    min_tiles = Param(int, default=2, min=1, doc="shorter detections are not reported")
    weak_tiles = Param(int, default=4, min=1, doc="shorter detections whose peak in-band "
                       "SNR stays under weak_snr_db are not reported (a weak signal's "
                       "flicker)")
    weak_snr_db = Param(float, default=15.0, unit="dB", doc="see weak_tiles")
    refine = Param(int, default=1024, min=0,
                   doc="FFT size of the PSD that settles each detection's edges (0: off)")
    valley_db = Param(float, default=15.0, min=0.0, doc="split a detection on a PSD twice "
                      "as fine as refine's where it dips this many dB under the median level "
                      "of both sides or to the noise between strong signals (0: off)")
    family = Param(str, default="builtin:spectrum_family",
                   doc="classifier of each detection's family from its PSD and envelope "
                       "(\"\": the network's cell votes)")
    min_label_confidence = Param(float, default=0.5, min=0.0, max=1.0,
                                 doc="the family is 'unknown' below this calibrated "
                                     "probability")
    energy_sigma = Param(float, default=6.0, min=0.0, doc="also take cells the model leaves "
                         "whose power over this tile and the previous stands this many "
                         "standard deviations over their bin's noise floor (weak signals "
                         "narrow against its cells; 0: off)")
    narrow = Param(bool, default=False, doc="also find signals narrower than the model's "
                   "cells on a tile-long FFT (CW tones, narrowband FM channels)")
    tones = Param(bool, default=True, doc="find CW tones in the cells the model leaves, on "
                  "their frames zoomed to a tile-long FFT's resolution (narrow does it on "
                  "every bin)")
    weak_tones = Param(bool, default=True, doc="with tones, also find CW tones too weak for "
                       "one tile on tile-long PSDs averaged over up to 16 tiles (costs a "
                       "tenth to a quarter of the throughput; under 10 dB it finds two "
                       "fifths more narrow signals: README)")
    max_batch = Param(int, default=32, min=1, doc="tiles per call at most (when the "
                      "stream is ahead: a call's fixed cost is spread over more tiles)")
    threads = Param(int, default=0, min=0, doc="ONNX Runtime threads (0: auto)")
    rate = Param(float, default=0.0, min=0.0, unit="Hz", doc="sample rate (0: rx_rate tag)")
    freq = Param(float, default=0.0, unit="Hz", doc="centre frequency (default: rx_freq)")

    def check(self):
        self.path, c = load_model(self.model, "spectrum_segmentation", needs="stft")
        stft = c.preprocess["stft"]
        self.contract = c
        self.fft, self.frames = int(stft["fft"]), int(stft["frames"])
        self.decim = self.fft * self.frames
        self.max_chunks = self.max_batch
        self.classes = c.class_names[1:]
        self._per_bin = c.normalization == "noise_floor_per_bin"
        self._win = centring_window(self.fft)
        self._mirror = np.r_[0, np.arange(self.fft - 1, 0, -1)]  # bin of -f, DC-centred
        self._zoom = 0
        if self.refine:
            if self.refine < self.fft or self.decim % self.refine:
                raise ParamError("refine", f"{self.refine} must be at least the model's FFT "
                                 f"size {self.fft} and divide its tile of {self.decim} samples")
            # the view ZOOM times finer that splits close neighbours (valley_db)
            self._zoom = self.refine * ZOOM if self.valley_db and \
                self.decim % (self.refine * ZOOM) == 0 else 0
        if self.narrow and not self.refine:
            raise ParamError("narrow", "the narrowband view needs the samples that refine "
                             "keeps (refine > 0)")
        if self.family:
            self._family_path, fc = load_model(self.family, "spectrum_family", param="family")
            if fc.inputs[0].item_shape != [FAMILY_FEATURES]:
                raise ParamError("family", f"'{self._family_path}' takes "
                                 f"{fc.inputs[0].item_shape} features, this block gives "
                                 f"{FAMILY_FEATURES}")
            self._families = fc.class_names
            self._temperature = float(fc.postprocess.get("temperature", 1.0))

    def output_types(self, in_types):
        t = in_types.get("inp")
        self._upstream_rate = t.rate if t is not None and t.rate else 0.0
        return {}

    def start(self):
        self._session = make_session(self.path, self.threads)
        self._family_session = make_session(self._family_path, 1) if self.family else None
        self._tracker = Tracker(vote_labels=True, hold=self.hold, min_blocks=self.min_tiles,
                                weak_blocks=self.weak_tiles, weak_db=self.weak_snr_db)
        self._radio = RadioContext(self.rate or getattr(self, "_upstream_rate", 0.0),
                                   self.freq)
        self._pos = 0
        self._last = None
        self._last_power = None   # the previous tile's cell power over its floors
        self._last_cells = None   # and its cells that held energy
        self._narrow = NarrowbandFinder(self.decim, image_rejection_db=IMAGE_REJECTION_DB) \
            if self.narrow else None
        self._tones = CellTones(self.fft, self.frames) if self.tones and not self.narrow \
            else None
        self._long_tones = LongTones(self.fft, LONG_TILES) \
            if self._tones is not None and self.weak_tones else None
        self._lines = self._narrow is not None or self._tones is not None
        self._narrow_tracks = NarrowTracks(self.decim, self.hold,
                                           max(self.min_tiles, NARROW_MIN_TILES),
                                           NARROW_MIN_TILES)
        self._repeats = Repeats(self.decim, self.count)   # detections held back
        # the FFTs and the model run on a worker thread (they release the GIL), so the
        # previous batch's detections overlap with them on 2 cores
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"cvstream-{self.name}")
        self._pending = None
        # samples (``work``) or results (``absorb``) past a call's last whole group
        self._grouped = self._tones is not None
        self._carry: np.ndarray | None = None
        self._held: tuple | None = None

    def prepare(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Whole tiles of x as the model's input, the (tiles, fft) mean cell power in units of
        the noise floor, each tile's noise floor and each bin's floor in units of its tile's
        (``noise_floor_per_bin``; None where neither the model nor the energy test needs
        it)."""
        tiles = scipy.fft.fft(x.reshape(-1, self.fft) * self._win, axis=1, overwrite_x=True)
        tiles = tiles.astype(np.complex64, copy=False).reshape(-1, self.frames, self.fft)
        floor = noise_floor(tiles)
        power = np.einsum("ktf,ktf->kf", tiles.real, tiles.real)
        power += np.einsum("ktf,ktf->kf", tiles.imag, tiles.imag)
        power /= self.frames * floor[:, None]
        bins = noise_floor_per_bin(tiles) if self._per_bin or self.energy_sigma else None
        if self._per_bin:   # the model's input flat across the band; the rest per tile
            tiles *= (1 / np.sqrt(bins))[:, None, :]
        else:
            tiles *= (1 / np.sqrt(floor)).astype(np.float32)[:, None, None]
        if bins is not None:
            bins /= floor[:, None]
        return tiles.view(np.float32).reshape(*tiles.shape, 2), power, floor, bins

    def fine_psd(self, x: np.ndarray, floor: np.ndarray, size: int = 0) -> np.ndarray:
        """(tiles, size) PSD of whole tiles of x at a finer resolution (``refine`` points by
        default), in units of each tile's noise floor (unit-energy windows keep white noise
        at the same power per bin at any FFT size, so the coarse floor carries over)."""
        size = size or self.refine
        spec = scipy.fft.fft(x.reshape(-1, size) * centring_window(size), axis=1,
                             overwrite_x=True)
        pairs = spec.view(spec.real.dtype)   # (real, imag) pairs, squared in place, summed
        pairs *= pairs
        fine = (pairs[:, 0::2] + pairs[:, 1::2]).reshape(len(floor), -1, size)
        # one periodogram a tile (the tile-long PSD) needs no mean
        return (fine[:, 0] if fine.shape[1] == 1 else fine.mean(axis=1)) / floor[:, None]

    def _run_model(self, tiles: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self.contract.inputs[0].name: tiles})[0][:, 0]

    def _tile_long(self, x, floor) -> np.ndarray | None:
        """Every tile's tile-long PSD, where the fine view looks for narrow signals or
        ``weak_tones`` for weak tones (the busy tiles' block-long views then share it)."""
        return self.fine_psd(x, floor, self.decim) if \
            (self._narrow or self._long_tones) and x is not None else None

    def compute(self, x, track_psds: bool = True):
        """The stateless part (what replicas run): the tiles' FFTs and the model's output,
        with each tile's cell power and noise floors, the tile-long PSDs and, with
        ``track_psds``, the finer PSDs that settle the tracks' edges, for the tiles that may
        hold a detection (``_track_psds``; ``_detect`` takes the rest)."""
        tiles, power, floor, bins = self.prepare(x)
        logits = self._run_model(tiles)
        whole = self._tile_long(x, floor)
        psds = self._track_psds(x, floor, whole, self._may_hold(logits, power)) \
            if track_psds else None
        return (logits, power, floor, bins, whole, tiles if self._tones is not None else None,
                psds)

    def _may_hold(self, logits, power) -> np.ndarray:
        """(tiles,) whether each tile may hold a detection: a cell whose presence, or whose
        power over the noise, passes the level that ``_detect`` applies to its mean with
        the tile before (so these hold every tile it finds busy; the batch's first tile,
        whose tile before is in the last batch, always)."""
        hot = (presence_of(logits) > self.threshold).any(axis=1)
        if self.energy_sigma:
            hot[1:] |= (0.5 * (power[1:] + power[:-1]) > self._energy_level).any(axis=1)
        hot[1:] |= hot[:-1]
        hot[0] = True
        return hot

    def _track_psds(self, x, floor, whole, which: np.ndarray) -> tuple | None:
        """For the tiles ``which``, the ``refine``-point PSD and, where ``valley_db`` splits
        on a view ZOOM times finer, that view and the tile-long PSD (``whole`` itself where
        given), each as (tiles, size) with the other rows unset; and ``which``. The tiles
        that hold a detection feed them to its track. None without ``refine``."""
        if not self.refine:
            return None
        x = x.reshape(len(floor), -1)[which]
        sizes = [self.refine]
        if self._zoom:
            sizes += [self._zoom] if whole is not None else [self._zoom, self.decim]
        rows = []
        for size in sizes:
            psd = self.fine_psd(x, floor[which], size)
            row = np.empty((len(floor), size), psd.dtype)
            row[which] = psd
            rows.append(row)
        if self._zoom and whole is not None:   # the tile-long PSDs at hand: every row set
            rows.append(whole)
        return which, *rows

    def absorb(self, result, x):
        """One batch's ``compute`` result into detections, in stream order (up to its last
        whole TONE_GROUP tiles; the rest waits for the next, as in ``work``)."""
        self._update_radio()
        result, x = self._whole_group_results(result, x)
        if result is not None:
            self._absorb(result, x)

    def _whole_group_results(self, result, x) -> tuple:
        """A batch's ``compute`` result and samples after those held from the last one, up
        to the last whole TONE_GROUP tiles (the rest held); (None, None) if none."""
        if self._held is not None:
            result = _join_tiles(self._held[0], result)
            x = np.concatenate([self._held[1], x])
            self._held = None
        count = len(result[0])
        whole = self._whole_tiles(count)
        if whole < count:
            self._held = (_tiles_of(result, slice(whole, count)), x[whole * self.decim:])
        if not whole:
            return None, None
        return _tiles_of(result, slice(0, whole)), x[:whole * self.decim]

    def _absorb(self, result, x):
        found = self._lines_of(result[4])
        self._detect(*result, x=x, found=found)

    def _lines_of(self, whole):
        """The fine view's narrow signals in the tile-long PSDs ``whole``, where it looks."""
        return self._narrow.find(whole) if self._narrow and whole is not None else None

    def _infer(self, x, track_psds: bool) -> tuple:
        """What the worker thread does while this one settles the batch before:
        ``compute``, and the fine view's narrow signals in its tile-long PSDs (in stream
        order: one worker)."""
        result = self.compute(x, track_psds)
        return result, self._lines_of(result[4])

    def work(self, x):
        self._update_radio()
        x, own = self._whole_groups(x)
        if len(x):
            self._submit(x, own)

    def _whole_tiles(self, count: int) -> int:
        """Of ``count`` tiles, those up to the last whole TONE_GROUP (all of them where no
        tones are searched)."""
        return count // TONE_GROUP * TONE_GROUP if self._grouped else count

    def _whole_groups(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """x after the samples held from the last call, up to its last whole TONE_GROUP
        tiles (the rest held for the next call; ``finish`` takes it), and whether it is
        this block's own array (joined to what was held) or a view of the input."""
        own = self._carry is not None
        if own:
            x = np.concatenate([self._carry, x])
            self._carry = None
        whole = self._whole_tiles(len(x) // self.decim) * self.decim
        if whole < len(x):
            self._carry = x[whole:].copy()
        return x[:whole], own

    def _submit(self, x: np.ndarray, own: bool = True) -> None:
        """The batch's FFTs and model on the worker thread, and the last batch's
        detections here; ``own``: x is not a view of the input, which the runtime reuses
        (the worker reads it after this call; the fine PSDs of the tiles that turn out to
        hold a signal, later still)."""
        x = x if own else x.copy()
        # the tracks' PSDs go to whichever thread waits on the other: to the worker where
        # it finished the last batch before this thread came for it (the same numbers
        # either way: each tile's PSD is its own FFTs)
        idle = self._pending is not None and self._pending[0].done()
        call = self._pool.submit(self._infer, x, idle)
        self._collect()
        self._pending = (call, x)

    def _update_radio(self) -> None:
        bad = self._radio.update(self.input_tags)
        if bad:
            self.count("bad_tag_values", bad)

    def _collect(self) -> None:
        """Turn the previous batch's model output into detections."""
        if self._pending is None:
            return
        (call, x), self._pending = self._pending, None
        result, found = call.result()
        self._detect(*result, x=x, found=found)

    def _detect(self, logits, power, floor, bins, whole=None, tiles=None, psds=None,
                x=None, found=None) -> None:
        """One batch's detections from its ``compute`` result (``whole``: its tile-long
        PSDs; ``tiles``: the model's input, whose cells the tones' zoom reads; ``psds``:
        the tracks' finer PSDs) and its samples ``x``; ``found``: the fine view's narrow
        signals in ``whole`` (``NarrowbandFinder.find``), where it looks."""
        presence = presence_of(logits)
        # causal smoothing: a cell counts with the mean of its tile and the previous one
        prev = np.concatenate([presence[:1] if self._last is None else self._last[None],
                               presence[:-1]])
        self._last = presence[-1].copy()
        masks = 0.5 * (presence + prev) > self.threshold
        network = masks.copy()   # the tones' guard: the energy test's cells may not last
        if self.energy_sigma:
            masks |= self._energy_cells(power, bins, masks, whole)
        per_tile = self._intervals(logits, masks, power, presence)
        fine = [None] * len(per_tile)
        zoom = [None] * len(per_tile)
        line = [None] * len(per_tile)
        blocks = [None] * len(per_tile)
        busy = [k for k, intervals in enumerate(per_tile) if intervals]
        if self.refine and busy:  # only tiles with a detection feed a track's PSD
            rows = self._busy_psds(busy, x, floor, whole, psds)
            x = x.reshape(len(per_tile), -1)
            for k in busy:
                fine[k], blocks[k] = rows[0][k], x[k]
                if self._zoom:
                    zoom[k], line[k] = rows[1][k], rows[2][k]
        step = TONE_GROUP if self._grouped else len(per_tile)
        for a in range(0, len(per_tile), step):   # the tones' search group by group
            b = min(a + step, len(per_tile))
            narrow = self._narrow_group(slice(a, b), logits, masks, network, power, bins,
                                        whole, found, tiles)
            for k in range(a, b):
                start = self._pos
                self._pos += self.decim
                if narrow is not None:
                    self._emit_narrow(self._narrow_tracks.tracker.update(
                        start, self._pos, narrow[k - a]))
                self._emit_all(self._tracker.update(
                    start, self._pos, per_tile[k], fine[k], blocks[k], zoom[k], line[k]))

    def _busy_psds(self, busy: list, x, floor, whole, psds) -> list:
        """The tracks' PSDs (``_track_psds``' rows) of the tiles ``busy``: those the
        worker took (``psds``), the rest taken here."""
        need = np.zeros(len(floor), bool)
        need[busy] = True
        if psds is not None:
            need &= ~psds[0]
            if not need.any():
                return psds[1:]
        more = self._track_psds(x, floor, whole, need)[1:]
        if psds is None:
            return more
        for row, extra in zip(psds[1:], more):
            if row is not extra:   # (``whole``: every row already set)
                row[need] = extra[need]
        return psds[1:]

    def _narrow_group(self, group: slice, logits, masks, network, power, bins, whole,
                      found, tiles) -> list | None:
        """The narrow intervals of the batch's tiles ``group``: the fine view's lines
        ``found`` (the whole batch is one group then), or the tones' search on the group,
        following the narrow tracks open now."""
        held_tones = None
        if self._tones is not None and tiles is not None:
            stft = tiles[group].view(np.complex64)[..., 0]   # the model's cells
            follow, held = self._narrow_tracks.followed()
            held_tones = follow[held]
            found = self._tones.find(stft, bins[group] if self._per_bin else 1.0,
                                     power[group], network[group], follow, held)
            if self._long_tones is not None and whole is not None:   # and weaker ones
                found = merge_lines(found, self._long_tones.find(whole[group],
                                                                 network[group]))
        if found is None:
            return None
        return self._narrow_intervals(logits[group], (masks if self._narrow else network)[
            group], power[group], found, held_tones)

    @property
    def _energy_level(self) -> float:
        """The mean cell power over two tiles (noise floor 1) that ``energy_sigma``
        deviations of white noise reach: mean 1, deviation 1 / sqrt(2 frames)."""
        return 1 + self.energy_sigma / np.sqrt(2 * self.frames)

    def _energy_cells(self, power: np.ndarray, bins: np.ndarray, masks: np.ndarray,
                      whole: np.ndarray | None) -> np.ndarray:
        """Cells the model leaves that hold a weak signal by their energy: the cell's mean
        power over this tile and the previous stands ``energy_sigma`` deviations over the
        noise (white-noise cells: mean 1, standard deviation 1 / sqrt(2 frames)) in units
        of both its tile's floor and its bin's (``power`` / ``bins``: a floor fitted across
        the band strays at its edges, a flat one where the receiver tilts it), under
        ENERGY_CAP over its bin's, not a strong signal's IQ image (its mirror across DC at
        most IMAGE_REJECTION_DB stronger), ENERGY_GUARD cells or more from the model's own
        cells, in runs of two cells or more, or alone where the cell held energy in the
        tile before too (a signal half a cell wide stays; a chirp's sweep or a strong
        signal's flicker moves on) and is no line (``_not_lines``; with the tile-long PSDs
        at hand: ``weak_tones`` or ``narrow``). The model misses such signals (a few dB
        over the noise in a cell, narrow against it) that the cell's frames show; counted
        as ``energy_cells``."""
        both = np.stack([power, power / bins])
        prev = np.concatenate([both[:, :1] if self._last_power is None else
                               self._last_power[:, None], both[:, :-1]], axis=1)
        self._last_power = both[:, -1].copy()
        flat, fitted = 0.5 * (both + prev)
        level = self._energy_level
        cells = (flat > level) & (fitted > level) & (fitted < ENERGY_CAP)
        cells &= fitted[:, self._mirror] < fitted * 10 ** (IMAGE_REJECTION_DB / 10)
        cells &= ~dilate_rows(masks, ENERGY_GUARD)
        paired = np.zeros_like(cells)
        paired[:, 1:] |= cells[:, :-1]
        paired[:, :-1] |= cells[:, 1:]
        before = np.concatenate([np.zeros_like(cells[:1]) if self._last_cells is None else
                                 self._last_cells[None], cells[:-1]])
        self._last_cells = cells[-1].copy()
        cells &= paired | self._not_lines(before & cells & ~paired, whole)
        found = int(cells.sum())
        if found:
            self.count("energy_cells", found)
        return cells

    def _not_lines(self, lone: np.ndarray, whole: np.ndarray | None) -> np.ndarray:
        """Of the cells ``lone``, those whose power the tile-long PSDs ``whole`` do not
        show in one line (a CW tone, which the tones' search reports at its width): their
        strongest bin under LINE_PEAK times their median bin; none without ``whole``."""
        if whole is None or not lone.any():
            return np.zeros_like(lone)
        tile, cell = np.nonzero(lone)
        per_cell = self.decim // self.fft   # a cell's bins, centred on it
        bin_ = (cell[:, None] * per_cell - per_cell // 2 + np.arange(per_cell)) % self.decim
        fine = whole[tile[:, None], bin_]
        keep = np.zeros_like(lone)
        keep[tile, cell] = fine.max(axis=1) < LINE_PEAK * np.median(fine, axis=1)
        return keep

    def _intervals(self, logits, masks, power, presence) -> list[list[tuple]]:
        """Per tile, (f_low, f_high, snr_db, label, confidence) of each run of present
        cells: the label from the run's summed class scores, the SNR from its mean power
        (noise floor 1), the confidence its peak presence; vectorized over the batch."""
        per_tile = [[] for _ in range(len(logits))]
        row, a, b = row_runs(masks, self.merge_gap, self.min_bins)
        if not len(row):
            return per_tile
        scores = np.cumsum(logits[:, 1:], axis=2, dtype=np.float64)
        scores = np.concatenate([np.zeros(scores.shape[:2] + (1,)), scores], axis=2)
        labels = np.argmax(scores[row, :, b] - scores[row, :, a], axis=1)
        energy = np.concatenate([np.zeros((len(power), 1)), np.cumsum(power, axis=1)], axis=1)
        snr = 10 * np.log10(np.maximum((energy[row, b] - energy[row, a]) / (b - a) - 1, 1e-3))
        bounds = np.stack([row * self.fft + a, row * self.fft + b], axis=1).ravel()
        peak = np.maximum.reduceat(np.append(presence.ravel(), 0), bounds)[::2]
        low, high = bin_edges(a, b, self.fft)
        for k, lo, hi, s, c, p in zip(row.tolist(), low.tolist(), high.tolist(), snr.tolist(),
                                      labels.tolist(), peak.tolist()):
            per_tile[k].append((lo, hi, s, self.classes[c], p))
        return per_tile

    def finish(self):
        if self._carry is not None:   # the stream's last, partial group
            carry, self._carry = self._carry, None
            self._submit(carry)
        self._collect()
        if self._held is not None:
            held, self._held = self._held, None
            self._absorb(*held)
        if self._lines:
            self._emit_narrow(self._narrow_tracks.tracker.flush())
        self._emit_all(self._tracker.flush(), flushed=True)

    def _narrow_intervals(self, logits, masks, power, found, held=None
                          ) -> list[list[tuple]]:
        """Per tile, the narrow signals of the fine view as tracker intervals, labelled
        ``tone`` when no wider than a tone or by the model's votes in their cell. Where
        it sits on another signal (the bins around it are not noise, or the model finds a
        signal in its cell), a peak must rise INSIDE_RISE over that signal (the bins
        around it, and the cells two away): a tone on a wide signal, not that signal's
        own spectral lines. A tone followed for NARROW_MIN_TILES tiles or more (at
        ``held``, the tones' search's sub-bins) that a signal starts beside need only rise
        FOLLOW_RISE over the quieter of the cells two away, where that one is noise
        (QUIET_AROUND): beside that signal, not on it (a line that starts with a signal, at
        its edge, is held to INSIDE_RISE)."""
        tile = found.tile
        cell = np.minimum(self.fft - 1, found.centre * self.fft // self.decim)
        crowded = (found.around > QUIET_AROUND) | masks[tile, cell]
        sides = np.stack([power[tile, np.maximum(cell - 2, 0)],
                          power[tile, np.minimum(cell + 2, self.fft - 1)]])
        keep = ~crowded | (found.peak >= INSIDE_RISE * np.maximum(found.around,
                                                                  sides.max(axis=0)))
        if held is not None and len(held):
            centre = 0.5 * (found.f_low + found.f_high) * self.decim
            near = np.abs(centre[:, None] - held[None, :]).min(axis=1)
            quiet = sides.min(axis=0)
            keep |= (near <= FOLLOW_SUBBINS + 0.5) & (quiet < QUIET_AROUND) & \
                (found.peak >= FOLLOW_RISE * quiet)
        out = [[] for _ in range(len(masks))]
        for k in np.flatnonzero(keep).tolist():
            if (found.f_high[k] - found.f_low[k]) * self.decim <= 3:
                label = "tone"
            else:
                label = self.classes[int(np.argmax(logits[tile[k], 1:, cell[k]]))]
            out[tile[k]].append((float(found.f_low[k]), float(found.f_high[k]),
                                 float(found.snr_db[k]), label, 1.0))
        return out

    def _emit_narrow(self, tracks) -> None:
        """Settle the narrow tracks that just ended (``narrow_tracks.NarrowTracks``)."""
        tracker = self._narrow_tracks.tracker
        if tracker.dropped_short:
            self.count("short_tracks", tracker.dropped_short)
            tracker.dropped_short = 0
        self._send_narrow(self._narrow_tracks.ended(tracks, self._tracker.open))

    def _send_narrow(self, settled: list) -> None:
        """Count each narrow track settled by what became of it, and send those SENT."""
        for verdict, track in settled:
            self.count(verdict)
            if verdict == SENT:
                self.emit(to_message(track, self._radio.rate or 1.0, self._radio.freq, 1.0))

    def stop(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _classify(self, tracks) -> None:
        """Each detection's family from its fine PSD (the ``family`` model), where it has
        one; the network's cell votes otherwise."""
        features = [family_features(t) for t in tracks] if self._family_session else []
        known = [i for i, f in enumerate(features) if f is not None]
        if not known:
            return
        x = np.stack([features[i] for i in known])[:, None, :]
        logits = self._family_session.run(None, {"features": x})[0][:, 0]
        for i, row in zip(known, family_probabilities(logits, self._temperature)):
            best = self._families[int(np.argmax(row))]
            tracks[i].label_confidence = float(row.max())
            if row.max() >= self.min_label_confidence:
                tracks[i].label = best
            else:
                tracks[i].label, tracks[i].guess = "unknown", best

    def _refine(self, track, dropped=None) -> list:
        """The track's detections on its fine PSD (``detections.refine_edges``); ``dropped``
        is called with the number of its parts too short to report."""
        if not self.refine:
            return [track]
        frames = self.decim // self.refine
        parts = time_segments(track, frames, margin=1 / self.fft)
        return [out for part in parts
                for out in refine_edges(part, frames, margin=1 / self.fft, block=self.decim,
                                        valley_db=self.valley_db, hold=self.hold,
                                        dropped=dropped)]

    def _emit_all(self, tracks, flushed: bool = False):
        if self._tracker.dropped_short:
            self.count("short_tracks", self._tracker.dropped_short)
            self._tracker.dropped_short = 0
        split = [(track, self._refine(track, lambda n: self.count("short_tracks", n))
                  if self.refine else [track]) for track in tracks]
        tracks = [part for _, parts in split for part in parts]
        if self.refine:
            self._classify(tracks)
            self._inner_signals(split)
            tracks = self._repeats.settle(self._without_sibling_lines(split, flushed), split,
                                          self._tracker.open,
                                          self._narrow_tracks if self._lines else None)
        elif self._lines:
            self._narrow_tracks.seen.extend(tracks)
        for track in tracks:
            self.emit(to_message(track, self._radio.rate or 1.0, self._radio.freq,
                                 track.score))
        if self._lines:
            self._send_narrow(self._narrow_tracks.release(split, self._tracker.open))

    def _inner_signals(self, split: list) -> None:
        """Add to each track's detections in ``split`` ((track, its detections)) the narrow
        signals inside the band of one labelled a flat-topped family (FLAT_FAMILIES), each a
        plateau over it on its finest view (``inner_signals.raised_plateaus``) with its time
        (from where its band stood alone before the wide one, ``inner_signals.raised_since``)
        and the plateau's SNR, classified on the plateau (the shape the family classifier
        learnt), then reported out over its roll-off (``inner_signals.roll_off_edges``);
        counted as ``inner_signals``."""
        found, plateaus = [], []
        for track, parts in split:
            for part in [p for p in parts if p.label in FLAT_FAMILIES and p.spectra]:
                view = (part.spectrum if part.zoom is None else part.zoom) / part.spectra
                band = band_bins(part.f_low, part.f_high, len(view))
                for lo, hi in raised_plateaus(view, *band):
                    inner = copy.copy(part)
                    inner.f_low, inner.f_high = (float(e) for e in bin_edges(lo, hi,
                                                                             len(view)))
                    inner.label_confidence = inner.guess = None
                    inner.inner = True
                    # its SNR: the plateau's mean excess over the noise (not the wide one's)
                    excess = float(np.mean(view[lo:hi])) - 1.0
                    inner.peak_snr_db = 10 * np.log10(max(excess, 1e-3))
                    # where it was there alone before the wide one came up around it
                    inner.start = raised_since(track.rows, inner.start, inner.f_low,
                                               inner.f_high, self.decim, self.hold)
                    parts.append(inner)
                    found.append(inner)
                    plateaus.append((view, band, (lo, hi)))
        if found:
            self._classify(found)
            for inner, (view, band, plateau) in zip(found, plateaus):
                inner.f_low, inner.f_high = (float(e) for e in bin_edges(
                    *roll_off_edges(view, *band, plateau), len(view)))
            self.count("inner_signals", len(found))

    def _without_sibling_lines(self, split: list, flushed: bool) -> list:
        """The detections of ``split`` ((track, its detections)) less those that are
        another of the same track's own lines (``detections.sibling_lines``), counted as
        ``sibling_lines``; a narrow signal on one is still inside the track."""
        out = []
        for _, parts in split:
            lines = sibling_lines(parts, self.decim, flushed)
            if lines:
                self.count("sibling_lines", len(lines))
                if self._lines:
                    self._narrow_tracks.seen.extend(parts[k] for k in lines)
            out += [part for k, part in enumerate(parts) if k not in lines]
        return out


def _tiles_of(result, tiles: slice):
    """A ``compute`` result (arrays with one row per tile, None, tuples of them) cut to
    ``tiles``."""
    if result is None:
        return None
    if isinstance(result, tuple):
        return tuple(_tiles_of(part, tiles) for part in result)
    return result[tiles]


def _join_tiles(first, second):
    """Two ``compute`` results one after the other, as one."""
    if first is None:
        return None
    if isinstance(first, tuple):
        return tuple(_join_tiles(a, b) for a, b in zip(first, second))
    return np.concatenate([first, second])
