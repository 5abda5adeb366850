"""spectrum_segmenter: a complex-valued CNN over STFT tiles -> detections with labels."""
from __future__ import annotations

import collections

import numpy as np

from cvstream import In, MsgOut, Param, RateBlock, register
from cvstream.errors import ParamError

from .cell_intervals import model_intervals, narrow_intervals
from .compute_worker import KINDS, ComputeWorker, unavailable
from .detections import ZOOM
from .energy_cells import IMAGE_REJECTION_DB, EnergyCells
from .family_labels import FamilyLabels
from .lines import LINE_MIN_BLOCKS
from .narrow_tracks import NarrowTracks
from .long_tones import LongTones
from .narrowband import CellTones, Lines, NarrowbandFinder, lines_in, merge_lines
from .onnx_model import load_model, make_session
from .repeats import Repeats
from .segmenter_output import SettledDetections
from .tile_groups import TileGroups
from .tile_spectra import COMPAND, TileSpectra
from .tracker import Tracker
from .tracks import RadioContext

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
#: batches the worker thread holds ahead of the detections: one computing and one queued,
#: so that it never waits on them (with one, the detections' thread waited on the worker
#: for 8-10 % of the bench's graph, which ran at 8.6-11.0 Msps against 10.4-11.7)
IN_FLIGHT = 2
#: tiles the model runs on a call at most: on this project's 2-core machine, 8-16 tiles
#: cost 0.34-0.37 s a second of 20 Msps stream, 32 tiles 0.41 and 64 tiles 0.49 (its
#: activations outgrow a core's 2 MB cache; README, stop 82)
MODEL_TILES = 16
#: where ``compute``'s result holds the model's logits, the tile-long PSDs, the scaled
#: tiles and the tracks' PSDs: ``_detect`` reads them while it settles their batch (the
#: weak tones' search copies the few tile-long rows it carries to the next, the tracks
#: copy the rows they keep and sum the others), so a worker process hands them out as
#: views of its slot (VIEWS), not copies
LOGITS, WHOLE, TILES, PSDS = 0, 4, 5, 6
VIEWS = (LOGITS, WHOLE, TILES, PSDS)


def presence_of(logits: np.ndarray) -> np.ndarray:
    """(tiles, fft) presence probability of each cell from the model's logits."""
    return 1 / (1 + np.exp(-logits[:, 0]))


@register("spectrum_segmenter")
class SpectrumSegmenter(SettledDetections, RateBlock):
    """Find and classify the signals in wideband IQ with a complex-valued segmentation model.

    The stream is cut into tiles of ``frames`` FFTs (sizes from the model's contract; the
    model works in normalized frequency, so any sample rate is served), and the model runs
    on up to ``max_batch`` tiles a call. From its per-cell presence and class outputs:

    - Cells: bins above ``threshold`` (smoothed over two tiles), and cells away from those
      whose power stands ``energy_sigma`` deviations over their bin's noise floor (weak
      signals the model leaves; counted as ``energy_cells``), merged into runs, labelled by
      the run's mean class scores.
    - Tracks: runs followed across tiles (``hold`` tiles of absence allowed); tracks shorter
      than ``min_tiles``, and those shorter than ``weak_tiles`` that never stand
      ``weak_snr_db`` over the noise, are counted as ``short_tracks``, not sent.
    - Edges: when a track ends, a finer PSD (``refine``-point FFTs of the same samples,
      summed over the track's tiles) settles its band: the bins above the noise near the
      coarse edges (a wider window where a neighbour joined the track for part of its
      tiles), split where a gap shows two neighbours, cut again on a PSD twice as fine
      where strong neighbours touch (``valley_db``) and where the tiles that hold the two
      sides differ (a burst beside a continuous signal); comb-like line spectra kept whole
      (not where two mirrored lines differ in time: CW tones at one spacing); each part
      trimmed to its 99.9 % power bandwidth; neighbouring parts with one constant envelope
      joined (an FSK's lobes); a CW tone at a part's edge that is there in tiles where the
      rest is not (beside a flat spectrum, also a burst the rest outlasts), and one in the
      valley between two flat spectra, cut off as detections of their own (where held for
      NARROW_MIN_TILES tiles, as the narrow view's lines); a tone in the track's reach
      that no part holds, there in too few of its tiles to show on the fine PSD's mean,
      is one too (``lines.lone_lines``; a narrow track that holds it has it), and so is
      a CW tone among a part's lines but none of them: off the grid of an FM's lines, or
      beside an AM's carrier with no line at its mirror (``stray_tones``). Each
      detection then spans the tiles where its own band holds it
      (``detections.refine_edges``).
    - Repeats: two tracks can follow one signal for a while and settle to its band. A
      detection that another one repeats (half its time or more, frequency IoU
      REPEAT_IOU) is counted as ``repeated_detections``, not sent; one within the band of a
      track still open waits for that track's detections (``repeats.Repeats``).
    - Labels: the ``family`` classifier names each detection's modulation family from the
      shape of its fine PSD, its bandwidth, how its band moved and five statistics of its
      envelope and instantaneous frequency in its band, taken on the samples of its first
      tiles (more of them for a narrow band; a detection cut from a track, on its own
      tiles; ``family_features.family_features``; with ``family: ""`` or ``refine: 0`` the
      label is the cell votes). Its probabilities are calibrated (the contract's
      ``postprocess.temperature``, fitted on held-out detections); below
      ``min_label_confidence`` the label is ``unknown``. A ``tone`` cut from the same track
      as an ``analog`` or ``fsk`` detection, beside it, that starts or ends with it (a
      stray tone: starts and ends with any of the track's detections) is that
      signal's own line (an FM's outer line): counted as ``sibling_lines``, not sent
      (``detections.sibling_lines``); so is a lone tone near such a detection whenever it
      comes, or held for fewer than NARROW_MIN_TILES tiles.
    - Inner signals: inside a detection of a flat-topped family
      (``segmenter_output.FLAT_FAMILIES``: OFDM, QAM, PSK), a flat plateau standing 3 dB or
      more over its level on both sides with steep edges is a narrow signal inside it, sent
      as a detection of its own over the same tiles (and the track's tiles before them where
      its band stood alone, ``inner_signals.raised_since``), classified, and reported out
      over its roll-off (counted as ``inner_signals``; ``inner_signals.raised_plateaus``,
      ``roll_off_edges``); where it outlasts the wide one, the detection in its band that
      starts as the wide one ends continues it (counted as ``continued_inner``, not sent).

    Narrow signals, narrower than the model's cells:

    - ``tones`` (on by default) zooms the cells the model leaves whose power stands out,
      each across its tile's frames, to a tile-long FFT's resolution, and follows the CW
      tones it finds there as narrow detections, one bin of that FFT wide
      (``narrowband.CellTones``; a tone held for NARROW_MIN_TILES tiles stays followed
      while a signal comes beside it). ``weak_tones`` (on by default) adds those too weak
      for one tile, on tile-long PSDs averaged over up to LONG_TILES tiles
      (``long_tones.LongTones``: late by up to that many tiles where such a tone starts).
      The tones' search reads the stream in groups of TONE_GROUP tiles from its start, and
      a call's tiles past its last whole group wait for the next call: the detections are
      the same however the stream arrives (a file's chunks, ZeroMQ frames, replicas'
      calls).
    - ``narrow: true`` (which replaces ``tones``) adds a tile-long FFT view of every bin
      (``narrowband.NarrowbandFinder``: lines that hold for NARROW_MIN_TILES tiles, not a
      strong line's IQ image), run on the model's worker thread.
    - Either way (``narrow_tracks.NarrowTracks``): narrow tracks sent are counted as
      ``narrow_detections``, those inside a detection of the model's as ``narrow_inside``
      (not sent); a line of the model's that a narrow track followed over as long a time is
      that track's, with the line's edges, and counted in ``repeated_detections``; two
      narrow tracks that share their time, mirrored about the centre of a wider detection
      of the model's, are that signal's own lines (an FM's pair at or past the edges of its
      99 % band), counted as ``mirror_lines``, not sent: a narrow track that may be one of
      such a pair waits for the model's tracks that hold the pair's midpoint.

    Threads: the FFTs and the model run on a worker thread (``compute``), overlapping the
    detections here, IN_FLIGHT batches ahead of them (its next batch queued while one
    computes, so that it never idles on this thread's detections); the finer PSDs of the
    tiles that hold a detection go to whichever of the two threads waits on the other (the
    same numbers either way); ``worker: process`` runs ``compute`` in a process of its
    own instead, the finer PSDs of every tile that may hold a detection included (this
    thread would take them only after waiting for it; ``compute_worker.ComputeWorker``:
    the same detections, its batches counted as ``process_batches``); with
    ``replicas: N`` the FFTs and the model run on N copies (``compute``), the detections in
    stream order here (``absorb``).

    Detection messages as cfar_detector's, with ``label`` the modulation family,
    ``label_confidence`` the classifier's probability of it (``label_guess`` the best
    family where ``unknown``) and ``confidence`` the peak presence probability.

    Ports: in (complex64) -> detections (message).
    Latency: one tile (fft x frames samples) to fill (with ``tones``, up to a group of
    TONE_GROUP), then up to IN_FLIGHT batches of processing; detections are sent when a
    signal ends (one within the band of a track still open, when that track ends).
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
    worker = Param(str, default="thread", choices=KINDS,
                   doc="where the FFTs and the model run: a thread, or a process of their own "
                       "(Linux; no GIL shared with the detections and the graph's other "
                       "blocks: fewer drops from a live stream on two cores; the thread "
                       "serves while it starts, under a second)")
    rate = Param(float, default=0.0, min=0.0, unit="Hz", doc="sample rate (0: rx_rate tag)")
    freq = Param(float, default=0.0, unit="Hz", doc="centre frequency (default: rx_freq)")

    def check(self):
        if unavailable(self.worker):
            raise ParamError("worker", unavailable(self.worker))
        self.path, c = load_model(self.model, "spectrum_segmentation", needs="stft")
        stft = c.preprocess["stft"]
        self.contract = c
        # the model's tiles companded here, not in its graph (``tile_spectra.compand``)
        self._compand = c.preprocess.get("compand")
        if self._compand not in (None, COMPAND):
            raise ParamError("model", f"{self.path}: preprocess compand '{self._compand}' "
                             f"is not one this block applies (only '{COMPAND}')")
        self.fft, self.frames = int(stft["fft"]), int(stft["frames"])
        self.decim = self.fft * self.frames
        self.max_chunks = self.max_batch
        self.classes = c.class_names[1:]
        per_bin = c.normalization == "noise_floor_per_bin"
        zoom = 0
        if self.refine:
            if self.refine < self.fft or self.decim % self.refine:
                raise ParamError("refine", f"{self.refine} must be at least the model's FFT "
                                 f"size {self.fft} and divide its tile of {self.decim} samples")
            # the view ZOOM times finer that splits close neighbours (valley_db)
            zoom = self.refine * ZOOM if self.valley_db and \
                self.decim % (self.refine * ZOOM) == 0 else 0
        self.spectra = TileSpectra(self.fft, self.frames, per_bin,
                                   per_bin or bool(self.energy_sigma), self.refine, zoom,
                                   compand=bool(self._compand))
        if self.narrow and not self.refine:
            raise ParamError("narrow", "the narrowband view needs the samples that refine "
                             "keeps (refine > 0)")
        self._labels = FamilyLabels(self.family, self.min_label_confidence) \
            if self.family else None

    def output_types(self, in_types):
        t = in_types.get("inp")
        self._upstream_rate = t.rate if t is not None and t.rate else 0.0
        return {}

    def start(self):
        self.stop()   # (a restart: the last worker goes)
        # (ONNX Runtime's blocked-channel layout costs this model more in reorders
        # between its few-channel convolutions and activations than it saves)
        self._session = make_session(self.path, self.threads, ("NchwcTransformer",))
        if self._labels is not None:
            self._labels.start()
        self._tracker = Tracker(vote_labels=True, hold=self.hold, min_blocks=self.min_tiles,
                                weak_blocks=self.weak_tiles, weak_db=self.weak_snr_db)
        self._radio = RadioContext(self.rate or getattr(self, "_upstream_rate", 0.0),
                                   self.freq)
        self._pos = 0
        self._last = None
        self._energy = EnergyCells(self.energy_sigma, self.fft, self.frames) \
            if self.energy_sigma else None
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
        # the FFTs and the model run on a worker thread or process, so the earlier
        # batches' detections overlap with them on 2 cores (a copy in a process needs no
        # labels: the detections here take them)
        self._pool = ComputeWorker(
            self, self.worker, max_samples=self.decim * (self.max_batch + TONE_GROUP),
            in_flight=IN_FLIGHT, result_bytes=self._result_bytes,
            overrides=dict(worker="thread", family=""), views=VIEWS)
        self._pending = collections.deque()   # (the worker's call, its samples)
        # samples (``work``) or results (``absorb``) past a call's last whole group
        self._grouped = self._tones is not None
        self._groups = TileGroups(self.decim, TONE_GROUP if self._grouped else 1)

    def _result_bytes(self, samples: int) -> int:
        """The most that ``compute``'s result for ``samples`` samples takes, with room to
        spare (8 bytes an element, where most are float32) and for alignment."""
        per_tile = (self.frames * 2 + len(self.classes) + 4) * self.fft + 2 * self.decim \
            + 2 + (self.refine * (1 + ZOOM) if self.refine else 0)
        return 8 * (samples // self.decim) * per_tile + 64 * 64

    def _run_model(self, tiles: np.ndarray, empty=None) -> np.ndarray:
        """The model's logits for ``tiles`` (into ``empty``'s array), run MODEL_TILES
        tiles a call: its activations for a batch of 64 outgrow a core's cache (the same
        numbers)."""
        name = self.contract.inputs[0].name
        parts = [self._session.run(None, {name: tiles[k:k + MODEL_TILES]})[0]
                 for k in range(0, len(tiles), MODEL_TILES)]
        out = (empty or np.empty)((len(tiles), *parts[0].shape[1:]), parts[0].dtype)
        return np.concatenate(parts, out=out)[:, 0]

    def _tile_long(self, x, floor, empty=None) -> np.ndarray | None:
        """Every tile's tile-long PSD, where the fine view looks for narrow signals or
        ``weak_tones`` for weak tones (the busy tiles' block-long views then share it)."""
        return self.spectra.fine_psd(x, floor, self.decim, empty) if \
            (self._narrow or self._long_tones) and x is not None else None

    def compute(self, x, track_psds: bool = True, empty=None):
        """The stateless part (what replicas run): the tiles' FFTs and the model's output,
        with each tile's cell power and noise floors, the tile-long PSDs and, with
        ``track_psds``, the finer PSDs that settle the tracks' edges, for the tiles that may
        hold a detection (``TileSpectra.track_psds``; ``_detect`` takes the rest).
        ``empty`` (as np.empty): where its large results go (a worker process's slot,
        ``process_worker.Arena``: sent on without a copy)."""
        tiles, model, power, floor, bins = self.spectra.prepare(x, empty)
        logits = self._run_model(model, empty)
        whole = self._tile_long(x, floor, empty)
        psds = self.spectra.track_psds(x, floor, whole, self._may_hold(logits, power),
                                       empty) if track_psds else None
        return (logits, power, floor, bins, whole, tiles if self._tones is not None else None,
                psds)

    def _may_hold(self, logits, power) -> np.ndarray:
        """(tiles,) whether each tile may hold a detection: a cell whose presence, or whose
        power over the noise, passes the level that ``_detect`` applies to its mean with
        the tile before (so these hold every tile it finds busy; the batch's first tile,
        whose tile before is in the last batch, always)."""
        hot = (presence_of(logits) > self.threshold).any(axis=1)
        if self.energy_sigma:
            hot[1:] |= (0.5 * (power[1:] + power[:-1]) > self._energy.level).any(axis=1)
        hot[1:] |= hot[:-1]
        hot[0] = True
        return hot

    def absorb(self, result, x):
        """One batch's ``compute`` result into detections, in stream order (up to its last
        whole TONE_GROUP tiles; the rest waits for the next, as in ``work``)."""
        self._update_radio()
        result, x = self._groups.results(result, x)
        if result is not None:
            self._absorb(result, x)

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
        x, own = self._groups.samples(x)
        if len(x):
            self._submit(x, own)

    def _submit(self, x: np.ndarray, own: bool = True) -> None:
        """The batch's FFTs and model on the worker, and the detections of the batches
        before the last IN_FLIGHT here; ``own``: x is not a view of the input, which the
        runtime reuses (the worker reads it after this call, and the detections later
        still: a copy of it, or the copy in the worker process's slot)."""
        # the tracks' PSDs go to whichever thread waits on the other: to the worker where
        # it finished its batches before this thread came with the next (the same numbers
        # either way: each tile's PSD is its own FFTs); asked only of a worker thread (a
        # process always takes them): a call's done() polls its process's socket
        def idle() -> bool:
            return bool(self._pending) and self._pending[-1][0].done()
        self._pending.append(self._pool.submit(x, idle, own))
        self._collect(IN_FLIGHT)

    def _update_radio(self) -> None:
        bad = self._radio.update(self.input_tags)
        if bad:
            self.count("bad_tag_values", bad)

    def _collect(self, keep: int = 0) -> None:
        """Turn the worker's output into detections, batch by batch in stream order, but
        for the last ``keep`` batches submitted."""
        while len(self._pending) > keep:
            call, x = self._pending.popleft()
            result, found = call.result()   # found: None where the worker left it here
            self._detect(*result, x=x, found=found if found is not None else
                         self._lines_of(result[4]))

    def _detect(self, logits, power, floor, bins, whole=None, tiles=None, psds=None,
                x=None, found=None) -> None:
        """One batch's detections from its ``compute`` result (``whole``: its tile-long
        PSDs; ``tiles``: the scaled tiles, whose cells the tones' zoom reads; ``psds``:
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
        per_tile = model_intervals(logits, masks, power, presence, self.classes,
                                   self.merge_gap, self.min_bins)
        fine = [None] * len(per_tile)
        zoom = [None] * len(per_tile)
        line = [None] * len(per_tile)
        blocks = [None] * len(per_tile)
        busy = [k for k, intervals in enumerate(per_tile) if intervals]
        if self.refine and busy:  # only tiles with a detection feed a track's PSD
            rows = self.spectra.busy_psds(busy, x, floor, whole, psds)
            refine = rows[0].copy()   # (a track keeps its blocks' rows; ``psds``: a view)
            x = x.reshape(len(per_tile), -1)
            for k in busy:
                fine[k], blocks[k] = refine[k], x[k]
                if self.spectra.zoom:
                    zoom[k], line[k] = rows[1][k], rows[2][k]
        step = TONE_GROUP if self._grouped else len(per_tile)
        weak = self._weak_tones(whole, network, tiles)
        for a in range(0, len(per_tile), step):   # the tones' search group by group
            b = min(a + step, len(per_tile))
            narrow = self._narrow_group(slice(a, b), logits, masks, network, power, bins,
                                        found, tiles, weak)
            for k in range(a, b):
                start = self._pos
                self._pos += self.decim
                if narrow is not None:
                    self._emit_narrow(self._narrow_tracks.tracker.update(
                        start, self._pos, narrow[k - a]))
                self._emit_all(self._tracker.update(
                    start, self._pos, per_tile[k], fine[k], blocks[k], zoom[k], line[k]))

    def _weak_tones(self, whole, network, tiles) -> Lines | None:
        """``weak_tones``' lines in the batch's tile-long PSDs ``whole``, where the tones'
        search runs: found for the whole batch at once (they do not depend on the narrow
        tracks that the search follows group by group; one call a batch, not a group,
        costs a fifth less)."""
        if self._long_tones is None or tiles is None or whole is None:   # (tones on)
            return None
        return self._long_tones.find(whole, network)

    def _narrow_group(self, group: slice, logits, masks, network, power, bins, found,
                      tiles, weak: Lines | None = None) -> list | None:
        """The narrow intervals of the batch's tiles ``group``: the fine view's lines
        ``found`` (the whole batch is one group then), or the tones' search on the group,
        following the narrow tracks open now, and its share of the weak tones ``weak``
        (``_weak_tones``)."""
        held_tones = None
        if self._tones is not None and tiles is not None:
            stft = tiles[group].view(np.complex64)[..., 0]   # the scaled cells
            follow, held = self._narrow_tracks.followed()
            held_tones = follow[held]
            found = self._tones.find(stft, bins[group] if self.spectra.per_bin else 1.0,
                                     power[group], network[group], follow, held)
            if weak is not None:   # and weaker ones
                found = merge_lines(found, lines_in(weak, group))
        if found is None:
            return None
        return narrow_intervals(logits[group], (masks if self._narrow else network)[group],
                                power[group], found, self.classes, self.decim, held_tones)

    def _energy_cells(self, power, bins, masks, whole) -> np.ndarray:
        """The batch's cells that the energy test adds (``energy_cells.EnergyCells``),
        counted as ``energy_cells``."""
        cells = self._energy.find(power, bins, masks, whole)
        found = int(cells.sum())
        if found:
            self.count("energy_cells", found)
        return cells

    def finish(self):
        carried = self._groups.take_carried()   # the stream's last, partial group
        if carried is not None:
            self._submit(carried)
        self._collect()
        held = self._groups.take_held()
        if held is not None:
            self._absorb(*held)
        if self._lines:
            self._emit_narrow(self._narrow_tracks.tracker.flush())
        self._emit_all(self._tracker.flush(), flushed=True)

    def stop(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None
