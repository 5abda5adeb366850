"""Pictures and summaries people would rather look at: spectrogram PNGs with detection
boxes, and a detection table on the terminal."""
from __future__ import annotations

import heapq

import numpy as np
import scipy.fft

from cvstream import In, MsgIn, Param, Sink, register
from cvstream.errors import CvstreamError
from cvstream.params import OUTPUT_FILE

from .stdout_lines import StdoutLines
from .tracks import RadioContext


def need_matplotlib(block_type: str) -> None:
    """PNG blocks need the `plots` extra; say so when the graph is checked, not at its end."""
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise CvstreamError(f"{block_type} draws with matplotlib, which is not installed: "
                            "pip install 'cvstream[plots]'")


#: ``png_sink``: boxes a port draws at most (a 10 x 6 inch picture shows no more apart)
MAX_BOXES = 1000


@register("png_sink")
class PngSink(Sink):
    """Draw the stream's spectrogram (dB) with detection boxes and labels into a PNG.

    Rows are averaged spectra of ``fft`` points; when more than ``max_rows`` arrive, pairs
    of rows are merged, so memory stays bounded on long streams. Boxes come from the
    ``detections`` port (solid, labelled) and ``truth`` port (dashed), at most MAX_BOXES a
    port: past that every other one kept goes, and one in two (four, ...) of those that
    come is kept, so an endless stream's picture spans all of it and is drawn in seconds
    (the others counted as ``boxes_not_drawn``). Written at the end.
    Ports: in (complex64), detections (message, optional), truth (message, optional).
    Latency: the picture is drawn at end of stream.
    Example: ``pic: {type: png_sink, path: spectrum.png, fft: 512}``
    """

    inp = In("complex64")
    detections = MsgIn(optional=True)
    truth = MsgIn(optional=True)
    path = Param(OUTPUT_FILE, doc="PNG file to write")
    fft = Param(int, default=512, min=16, doc="FFT size")
    max_rows = Param(int, default=600, min=16, doc="spectrogram rows kept")
    title = Param(str, default="", doc="title over the picture")
    rate = Param(float, default=0.0, min=0.0, unit="Hz", doc="sample rate (0: rx_rate tag)")
    freq = Param(float, default=0.0, unit="Hz", doc="centre frequency (default: rx_freq)")

    def check(self):
        need_matplotlib("png_sink")

    def start(self):
        self._rows: list[np.ndarray] = []
        self._per_row = 1          # FFT frames averaged into one row
        self._acc, self._acc_n = np.zeros(self.fft), 0
        self._tail = np.zeros(0, np.complex64)
        self._boxes = {"detections": [], "truth": []}
        self._box_stride = {"detections": 1, "truth": 1}   # keep one box in this many
        self._box_seen = {"detections": 0, "truth": 0}
        self._radio = RadioContext(self.rate, self.freq)
        self._win = np.hanning(self.fft).astype(np.float32)

    def work(self, x):
        bad = self._radio.update(self.input_tags)
        if bad:
            self.count("bad_tag_values", bad)
        data = np.concatenate([self._tail, x]) if len(self._tail) else x
        n = len(data) // self.fft * self.fft
        self._tail = np.array(data[n:])
        if not n:
            return
        spec = scipy.fft.fft(data[:n].reshape(-1, self.fft) * self._win, axis=1)
        power = np.fft.fftshift((spec.real ** 2 + spec.imag ** 2), axes=1)
        for row in power:
            self._acc += row
            self._acc_n += 1
            if self._acc_n == self._per_row:
                self._rows.append(self._acc / self._acc_n)
                self._acc, self._acc_n = np.zeros(self.fft), 0
        if len(self._rows) > self.max_rows:
            rows = self._rows
            self._rows = [(rows[i] + rows[i + 1]) / 2 for i in range(0, len(rows) - 1, 2)]
            self._per_row *= 2

    def on_message(self, port, msg):
        seen, self._box_seen[port] = self._box_seen[port], self._box_seen[port] + 1
        if seen % self._box_stride[port]:
            self.count("boxes_not_drawn")
            return
        boxes = self._boxes[port]
        boxes.append(msg)
        if len(boxes) > MAX_BOXES:
            self._boxes[port] = boxes[::2]
            self._box_stride[port] *= 2
            self.count("boxes_not_drawn", len(boxes) - len(self._boxes[port]))

    def stop(self):
        if not getattr(self, "_rows", None):
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rate, centre = self._radio.rate or 1.0, self._radio.freq
        unit, scale = ("MHz", 1e6) if self._radio.rate else ("cycles/sample", 1.0)
        img = 10 * np.log10(np.array(self._rows) + 1e-20)
        seconds = len(self._rows) * self._per_row * self.fft / rate
        f0, f1 = (centre - rate / 2) / scale, (centre + rate / 2) / scale
        fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
        lo, hi = np.percentile(img, [5, 99.9])
        ax.imshow(img, aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                  extent=(f0, f1, 0, seconds * 1e3))
        for port, style, color in (("truth", "--", "white"), ("detections", "-", "red")):
            for m in self._boxes[port]:
                x0, x1 = m["freq_lower_edge"] / scale, m["freq_upper_edge"] / scale
                t0 = m["sample_start"] / rate * 1e3
                t1 = t0 + m["sample_count"] / rate * 1e3
                ax.add_patch(matplotlib.patches.Rectangle(
                    (x0, t0), x1 - x0, t1 - t0, fill=False, ls=style, lw=1.2, ec=color))
                if port == "detections":
                    ax.text(x0, t1, str(m.get("label", "")), color=color, fontsize=7,
                            va="bottom")
        ax.set_xlabel(f"frequency ({unit})")
        ax.set_ylabel("time (ms)")
        ax.set_title(self.title or "spectrogram (red: detections, dashed: truth)")
        fig.tight_layout()
        fig.savefig(self.path)
        plt.close(fig)
        self._rows = []


@register("detection_table")
class DetectionTable(Sink):
    """Print a table of the detections (count per label, then the first ``rows``) at the
    end of the stream, on standard output. It keeps the counts and the earliest ``rows``
    detections only (an endless stream's table takes no more memory as it goes on).

    Ports: in (message). Example: ``summary: {type: detection_table, rows: 20}``
    """

    inp = MsgIn(doc="detection messages")
    rows = Param(int, default=20, min=0, doc="detections listed individually")

    def start(self):
        self._first: list = []   # a heap of the earliest rows: (-sample_start, -arrival, msg)
        self._labels: dict[str, int] = {}
        self._total = 0

    def on_message(self, port, msg):
        label = msg.get("label", "?")
        self._labels[label] = self._labels.get(label, 0) + 1
        self._total += 1
        if self.rows:
            heapq.heappush(self._first, (-msg["sample_start"], -self._total, msg))
            if len(self._first) > self.rows:
                heapq.heappop(self._first)   # the latest start (of equal ones, the last)

    def stop(self):
        if not hasattr(self, "_labels"):
            return
        dets = [m for _, _, m in sorted(self._first, reverse=True)]   # at most rows
        lines = [f"{self._total} detections: " + ", ".join(f"{k} {v}" for k, v in
                                                          sorted(self._labels.items()))]
        if dets:
            lines.append(f"{'start':>10} {'samples':>9} {'centre MHz':>11} {'width kHz':>10} "
                         f"{'label':<8} {'conf':>5} {'SNR dB':>7}")
            for m in dets:
                lines.append(f"{m['sample_start']:>10} {m['sample_count']:>9} "
                             f"{m.get('center_freq', 0) / 1e6:>11.3f} "
                             f"{m.get('bandwidth', 0) / 1e3:>10.1f} {m.get('label', ''):<8} "
                             f"{m.get('confidence', 0):>5.2f} {m.get('snr_db', 0):>7.1f}")
            if self._total > self.rows:
                lines.append(f"... and {self._total - self.rows} more")
        StdoutLines(self).write(lines)
