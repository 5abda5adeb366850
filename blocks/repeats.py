"""Which of ``spectrum_segmenter``'s detections go out, and when (``Repeats``). Two tracks
can follow one signal for a while (each on a run of cells: a weak signal's flicker,
neighbours the coarse view joined in one tile and not the next), and each settles to the
signal's own band: a detection that another one repeats is counted, not sent, and one
within the band of a model track still open waits for that track's detections. An inner
signal (``inner_signals``) that outlasts the wide one around it waits for the tracks that
may continue it and takes in the detection that does."""
from __future__ import annotations

from typing import Callable

from .detections import REPEAT_IOU
from .narrow_tracks import NarrowTracks
from .tracks import Track

#: an inner signal goes on in a detection that starts within this many tiles of its end, in
#: its band (frequency IoU REPEAT_IOU), of a track open when it ended: the wide one ended first
CONTINUE_TILES = 2


class Repeats:
    """The detections held back, for a stream of tiles of ``block`` samples; ``count(name,
    n=1)`` adds to the block's counters (``repeated_detections``, ``continued_inner``)."""

    def __init__(self, block: int, count: Callable[..., None]):
        self.block, self.count = block, count
        self.waiting: list = []   # detections within the band of a track still open
        self.continuing: list = []   # (inner signal, the open tracks that may continue it)

    def settle(self, parts: list, split: list, model_open: list,
               narrow: NarrowTracks | None = None) -> list:
        """The detections to send now, of ``parts`` (those of the tracks that just ended,
        ``split``: (track, its detections)) and of those waiting, while the model tracks
        ``model_open`` are open. A detection repeats another that shares most of its time
        and its band (``repeats``): of two that end together the longer is sent; one
        within the band of a track still open waits for that track's detections, and is
        counted as ``repeated_detections``, not sent, if one of them repeats it. With the
        ``narrow`` tracks, a line of the model's that a narrow track follows is that
        track's (``NarrowTracks.claims``; counted as repeated), and every detection sent
        or waiting is one that narrow tracks may lie inside. An inner signal first waits
        for the tracks that may continue it (``continue_inner``)."""
        parts = self.continue_inner(parts, model_open)
        out = []
        for k, part in enumerate(parts):
            if any(j != k and self.repeats(other, part) and
                   (other.stop - other.start, -j) > (part.stop - part.start, -k)
                   for j, other in enumerate(parts)):
                self.count("repeated_detections")
                continue
            if narrow is not None and narrow.claims(part):
                self.count("repeated_detections")
                continue
            if narrow is not None:   # narrow signals it holds are its, sent now or later
                narrow.seen.append(part)
            blockers = [t for t in model_open if self.may_repeat(t, part)]
            if blockers:
                self.waiting.append((part, blockers, []))
            else:
                out.append(part)
        waiting, self.waiting = self.waiting, []
        for part, blockers, seen in waiting:   # tracks compare by identity
            seen += [p for track, its in split if track in blockers for p in its]
            blockers = [t for t in blockers if t in model_open]
            if blockers:
                self.waiting.append((part, blockers, seen))
            elif any(self.repeats(other, part) for other in seen):
                self.count("repeated_detections")
            else:
                out.append(part)
        return out

    def continue_inner(self, parts: list, model_open: list) -> list:
        """``parts`` with each inner signal joined to the detection that continues it
        (``_join_continuation``: the wide signal around it ended first and it goes on
        alone): one of the same track, or of a track open now (in ``model_open``) that
        starts within CONTINUE_TILES tiles of its end in its band, for which it waits (left
        out of ``parts`` until those tracks have ended)."""
        parts = list(parts)
        waiting, self.continuing = self.continuing, []
        for inner, tracks in waiting:
            self._join_continuation(inner, parts)
            tracks = [t for t in tracks if t in model_open]
            if tracks:
                self.continuing.append((inner, tracks))
            else:
                parts.append(inner)
        waited = {id(inner) for inner, _ in waiting}
        for inner in [p for p in parts if p.inner and id(p) not in waited]:
            self._join_continuation(inner, parts)   # a later part of the same track
            tracks = [t for t in model_open if self._starts_at_end(inner, t.start)
                      and t.shared_band(inner) >= 0.5 * (inner.f_high - inner.f_low)]
            if tracks:
                self.continuing.append((inner, tracks))
                parts.remove(inner)
        return parts

    def _join_continuation(self, inner: Track, parts: list) -> None:
        """Join to inner signal ``inner`` the detections of ``parts`` that go on where it
        ended: they start within CONTINUE_TILES tiles of its end, in its band (frequency
        IoU REPEAT_IOU); taken out of ``parts`` and counted as ``continued_inner``."""
        for part in [p for p in parts if not p.inner and self._starts_at_end(inner, p.start)
                     and p.band_iou(inner) >= REPEAT_IOU]:
            inner.stop = max(inner.stop, part.stop)
            parts.remove(part)
            self.count("continued_inner")

    def _starts_at_end(self, inner: Track, start: int) -> bool:
        """Whether sample ``start`` lies within CONTINUE_TILES tiles of ``inner``'s end."""
        return abs(start - inner.stop) <= CONTINUE_TILES * self.block

    @staticmethod
    def repeats(other: Track, part: Track) -> bool:
        """Whether detection ``other`` shares at least half of ``part``'s time and its band
        (frequency IoU REPEAT_IOU)."""
        return other.shared_time(part) >= 0.5 * (part.stop - part.start) and \
            other.band_iou(part) >= REPEAT_IOU

    @staticmethod
    def may_repeat(track: Track, part: Track) -> bool:
        """Whether a track still open may report ``part`` again: it has followed half of
        its time or more, and its band (the union of its runs) holds most of part's."""
        return track.shared_time(part) >= 0.5 * (part.stop - part.start) and \
            track.shared_band(part) >= 0.5 * (part.f_high - part.f_low)
