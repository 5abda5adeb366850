"""The narrow tracks that ``spectrum_segmenter`` follows beside its model's (CW tones from
the tones' search, lines of the fine view), and what becomes of each when it ends
(``NarrowTracks``): sent; held by a detection of the model's at its centre (that
detection's carrier, one of its lines, or the same tone, which the model's detection
reports with its width); or one of a mirrored pair about a wider detection's centre (that
signal's own lines). A narrow track that ends within the band of a model track still open
waits for that track's detections. The block feeds it the model's detections as it sends
them and the model's tracks as they end, and counts and sends what it settles."""
from __future__ import annotations

from collections import deque

import numpy as np

from .tracker import Tracker
from .tracks import Track

#: two narrow detections whose midpoint lies this near the centre of a wider detection (in
#: bins of the tile-long FFT, or this share of its width, where more: its edges are a
#: noisy power band's) are its own pair of lines
MIRROR_BINS = 2.0
MIRROR_SHARE = 0.05

#: what became of a settled narrow track: the segmenter's counter for it
SENT, INSIDE, MIRRORED = "narrow_detections", "narrow_inside", "mirror_lines"


class NarrowTracks:
    """The narrow tracks of a stream cut into blocks of ``block`` samples (the tile-long
    FFT's size): followed by ``tracker`` (``hold`` blocks of absence allowed; tracks
    shorter than ``min_blocks`` are counted in its ``dropped_short``, not settled), held
    once seen in ``held_blocks`` blocks (a tone, not a flicker). ``ended`` and ``release``
    return the tracks they settle as (what became of it: SENT, INSIDE or MIRRORED, track)
    pairs, in order."""

    def __init__(self, block: int, hold: int, min_blocks: int, held_blocks: int):
        self.tracker = Tracker(vote_labels=True, hold=hold, min_blocks=min_blocks)
        self.block, self.hold, self.held_blocks = block, hold, held_blocks
        self.seen: deque = deque(maxlen=64)   # the model's last detections: sent, or lines
        self.waiting: list = []   # narrow tracks ended within a model track still open
        self.settled: deque = deque(maxlen=64)   # the last narrow tracks settled
        self.followed_lines: list = []   # the model's lines a narrow track followed (not sent)

    def followed(self) -> tuple[np.ndarray, np.ndarray]:
        """The centres of the narrow tracks open now, in bins of the tile-long FFT from DC
        (the tones' search's sub-bins), and whether each has been seen in ``held_blocks``
        blocks or more (a tone, not a flicker)."""
        tracks = self.tracker.open
        return (np.array([t.centre * self.block for t in tracks]),
                np.array([len(t.edges) >= self.held_blocks for t in tracks], bool))

    def ended(self, tracks: list, model_open: list) -> list[tuple[str, Track]]:
        """Settle the narrow ``tracks`` that just ended, but for those that a model track
        still open (``model_open``) may hold, at their centre or at their midpoint with a
        mirror partner: they wait for its detections (``release``)."""
        out = []
        for track in tracks:
            middles = [0.5 * (track.centre + other.centre)
                       for other in self._mirror_partners(track, tracks)]
            blockers = [t for t in model_open if self._covers(t, track) or
                        any(t.overlaps(m, m) for m in middles)]
            if blockers:   # decided when those tracks end, on their settled parts
                self.waiting.append((track, blockers, []))
            else:
                out.append(self._settle(track, [], tracks))
        return out

    def release(self, split: list, model_open: list) -> list[tuple[str, Track]]:
        """Settle the narrow tracks whose model tracks have all ended (none of them in
        ``model_open``); ``split``: (track, its detections) of the model's tracks that just
        did, less the lines a narrow track followed (``claims``: it is sent for them)."""
        followed = {id(part) for part in self.followed_lines}
        self.followed_lines = []
        split = [(track, [p for p in its if id(p) not in followed]) for track, its in split]
        waiting, self.waiting = self.waiting, []
        released = [narrow for narrow, _, _ in waiting]
        out = []
        for narrow, blockers, parts in waiting:
            parts += [part for track, its in split if track in blockers for part in its]
            blockers = [t for t in blockers if t in model_open]   # by identity
            if blockers:
                self.waiting.append((narrow, blockers, parts))
            else:
                out.append(self._settle(narrow, parts, released))
        return out

    def claims(self, part: Track) -> bool:
        """Whether ``part``, a detection of the model's about to be sent, is a line that a
        narrow track follows (``follows_line``): then that track is sent for it, and the
        line is not. A ``lone`` line (``lines.lone_lines``: a tone the model's track only
        reached) is also one where a narrow track, open, waiting or settled, holds its
        centre at any time within ``hold`` blocks of its own (``_shares_tone``)."""
        if self.follows_line(part) or part.lone and self._shares_tone(part):
            self.followed_lines.append(part)
            return True
        return False

    def _shares_tone(self, part: Track) -> bool:
        """Whether a narrow track (open, waiting or settled) holds the centre of ``part``
        (to a bin of the tile-long PSD) within ``hold`` blocks of its time."""
        slack = self.hold * self.block
        return any(narrow.start - slack < part.stop and part.start < narrow.stop + slack
                   and self._at_centre(narrow, part)
                   for narrow in [*self.tracker.open, *self.settled,
                                  *(track for track, _, _ in self.waiting)])

    def follows_line(self, part: Track) -> bool:
        """Whether a narrow track follows ``part``, a line of the model's (``_follows``): one
        open now, or one ended and waiting on the model's tracks that lasted as long as
        the line or longer (the stream's end closes both, the narrow ones first), which
        then takes the line's edges (the block-long PSD's, finer than its tiles')."""
        if any(self._follows(t, part) for t in self.tracker.open):
            return True
        for narrow, _, _ in self.waiting:
            if self._follows(narrow, part) and \
                    narrow.stop - narrow.start >= part.stop - part.start:
                narrow.f_low, narrow.f_high = part.f_low, part.f_high
                return True
        return False

    def _settle(self, track: Track, parts: list, ended: list) -> tuple[str, Track]:
        """What becomes of a narrow track: INSIDE where a detection of the model's holds
        it (one of ``parts``, the detections of the model tracks it ended within, at its
        centre, or one of the last ones sent, ``_covers``); MIRRORED where it and another
        narrow track (open, or one of ``ended``, those settled with it) are a mirrored
        pair of lines about such a detection's centre (``_mirrored``); SENT otherwise,
        labelled by its votes."""
        self.settled.append(track)
        if any(self._at_centre(part, track) for part in parts) or \
                any(self._covers(part, track, exact=True) for part in self.seen):
            return INSIDE, track
        if self._mirrored(track, parts + list(self.seen), ended):
            return MIRRORED, track
        track.label = max(track.votes, key=track.votes.get) if track.votes else "tone"
        return SENT, track

    def _mirror_partners(self, track: Track, ended: list) -> list:
        """The narrow tracks (open, ``ended`` with it, waiting or lately settled) that
        share half of ``track``'s time or of theirs, whichever is shorter: with it, a pair
        that may be mirrored about a signal's centre."""
        others = [*self.tracker.open, *ended,
                  *(narrow for narrow, _, _ in self.waiting), *self.settled]
        return [other for other in others if other is not track and track.shared_time(
            other) >= 0.5 * min(track.stop - track.start, other.stop - other.start)]

    def _mirrored(self, track: Track, detections: list, ended: list) -> bool:
        """Whether a narrow track and a partner (``_mirror_partners``) lie mirrored about
        the centre (to MIRROR_BINS bins of the tile-long FFT or MIRROR_SHARE of its width)
        of one of the model's ``detections`` wider than a line that shares their time: that
        signal's own pair of lines (GNU Radio's FM: a pair at or past the edges of its 99 %
        band), not two tones."""
        wide = [d for d in detections if not d.is_line(self.block) and
                d.shared_time(track) > 0]
        return any(abs(d.centre - 0.5 * (track.centre + other.centre)) <=
                   max(MIRROR_BINS / self.block, MIRROR_SHARE * (d.f_high - d.f_low)) and
                   d.shared_time(other) > 0
                   for other in self._mirror_partners(track, ended) for d in wide)

    def _covers(self, track: Track, narrow: Track, exact: bool = False) -> bool:
        """Whether a detection of the model's holds a narrow signal over most of the
        narrow one's time and at its centre (to a bin of the tile-long PSD): that
        detection's carrier (AM, FM), one of its lines (FM, FSK), or the same tone, which
        the model's detection reports with its width. ``exact``: on its settled edges (a
        detection sent, which also covers a narrow signal that starts within ``hold``
        blocks of its end: the same tone, followed on after the model lost it); otherwise
        on the band of a track still open (it may hold it)."""
        shared = track.shared_time(narrow)
        after = exact and 0 <= narrow.start - track.stop <= self.hold * self.block
        if shared < 0.5 * (narrow.stop - narrow.start) and not after:
            return False
        if exact:
            return self._at_centre(track, narrow)
        centre, slack = narrow.centre, 1 / self.block
        return track.overlaps(centre - slack, centre + slack)

    def _at_centre(self, track: Track, narrow: Track) -> bool:
        """Whether a detection's band holds a narrow one's centre (to a bin of the
        tile-long PSD)."""
        centre, slack = narrow.centre, 1 / self.block
        return track.f_low - slack <= centre <= track.f_high + slack

    def _follows(self, narrow: Track, part: Track) -> bool:
        """Whether a narrow track already follows ``part``, a line of the model's
        (one bin of the tile-long PSD: a carrier the model saw for a while): it holds the
        line's centre over half its time or more and has been seen in enough blocks to be
        sent (else the tone would be lost to both)."""
        return part.is_line(self.block) and \
            len(narrow.edges) >= self.tracker.min_blocks and \
            self._covers(narrow, part)
