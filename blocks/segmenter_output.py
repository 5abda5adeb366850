"""spectrum_segmenter's output side: the tracks that ended, settled into detections (their
edges on the fine PSD, labels, inner signals, a track's own lines, repeats held back) and
sent as messages; the narrow tracks' verdicts counted. ``SpectrumSegmenter`` takes these
methods from ``SettledDetections``; the block's state they use is set in its ``start``."""
from __future__ import annotations

from .detections import refine_edges, sibling_lines, time_segments
from .inner_signals import add_inner_signals
from .narrow_tracks import SENT
from .tracks import to_message

#: families whose spectrum is flat across their band: a plateau raised inside one is another
#: signal (``_inner_signals``); an FSK's lobes, an FM's lines or a chirp's sweep are their own
FLAT_FAMILIES = ("ofdm", "qam", "psk")


class SettledDetections:
    """The detections a segmenter sends when its tracks end (mixed into
    ``SpectrumSegmenter``)."""

    def _emit_narrow(self, tracks) -> None:
        """Settle the narrow tracks that just ended (``narrow_tracks.NarrowTracks``); a
        tile where none ended and none was dropped has nothing to settle."""
        tracker = self._narrow_tracks.tracker
        if not tracks and not tracker.dropped_short:
            return
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

    def _classify(self, tracks) -> None:
        """Each detection's family from its fine PSD (the ``family`` model,
        ``family_labels.FamilyLabels``), where it has one; the network's cell votes
        otherwise."""
        if self._labels is not None:
            self._labels.label(tracks)

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
        """Settle the model's tracks that ended (``flushed``: at the stream's end) into
        detections and send them, and the narrow tracks they release."""
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
        signals inside the band of one labelled a flat-topped family
        (``inner_signals.add_inner_signals``), classified on their plateaus; counted as
        ``inner_signals``."""
        found = add_inner_signals(split, FLAT_FAMILIES, self.decim, self.hold,
                                  self._classify)
        if found:
            self.count("inner_signals", found)

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
