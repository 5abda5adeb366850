"""Evaluation of spectrum detectors on held-out synthetic scenes, per in-band SNR bucket.

Metrics, per bucket (every signal of a scene drawn inside the bucket's SNR range):
- cell precision / recall / F1 of signal presence on a 1024-bin x 1024-hop STFT grid;
- detection recall and precision at time-frequency IoU >= 0.5 (greedy matching), their
  F1, and the recall split into isolated signals and signals whose box overlaps another's
  (a signal inside or across another's band at the same time: the hard case for any
  detector); the share of hidden signals (more than half of the box under stronger
  signals: a higher in-band SNR is a higher PSD, and the cell labels give those cells to
  the stronger signal) and the recall of the others, the visible ones;
- false alarms per second (unmatched detections / recorded time at the nominal rate);
- label accuracy of matched detections (n/a for detectors without classes);
- per-bin accuracy over each window (a bin is occupied if any signal covers it), the
  figure CMuSeNet reports.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synth import SceneConfig, SignalLabel, cell_labels, scene

BUCKETS = ((-10, 0), (0, 10), (10, 20), (20, 30))
GRID_FFT = 1024
RATE = 20e6


@dataclass
class Box:
    start: int
    stop: int
    f_low: float
    f_high: float
    label: str = "signal"
    snr_db: float = 0.0  # in-band SNR (truth boxes)
    #: a family classifier's calibrated probability of its best family, and that family
    #: (also when the label is "unknown"); None from detectors without one
    label_confidence: float | None = None
    guess: str | None = None


def iou(a: Box, b: Box) -> float:
    dt = min(a.stop, b.stop) - max(a.start, b.start)
    df = min(a.f_high, b.f_high) - max(a.f_low, b.f_low)
    if dt <= 0 or df <= 0:
        return 0.0
    inter = dt * df
    union = (a.stop - a.start) * (a.f_high - a.f_low) + (b.stop - b.start) * (
        b.f_high - b.f_low) - inter
    return inter / union


def match(truth: list[Box], pred: list[Box], threshold: float = 0.5,
          score=iou) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by ``score`` (time-frequency IoU; highest first), pairs at
    or above the threshold."""
    pairs = sorted(((score(t, p), i, j) for i, t in enumerate(truth)
                    for j, p in enumerate(pred)), reverse=True)
    used_t, used_p, out = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            out.append((i, j))
    return out


def boxes_from_messages(msgs: list[dict], rate: float = 1.0, center: float = 0.0) -> list[Box]:
    return [Box(m["sample_start"], m["sample_start"] + m["sample_count"],
                (m["freq_lower_edge"] - center) / rate, (m["freq_upper_edge"] - center) / rate,
                m.get("label", "signal"), label_confidence=m.get("label_confidence"),
                guess=m.get("label_guess", m.get("label"))) for m in msgs]


RELIABILITY_BINS = 10


def reliability(pairs: list[tuple[float, bool]], bins: int = RELIABILITY_BINS) -> list[list]:
    """[(count, sum of confidences, right)] per confidence bin of width 1/bins, from
    (confidence, best family right?) pairs."""
    out = [[0, 0.0, 0] for _ in range(bins)]
    for conf, right in pairs:
        cell = out[min(int(conf * bins), bins - 1)]
        cell[0] += 1
        cell[1] += float(conf)
        cell[2] += int(right)
    return out


def expected_calibration_error(bins: list[list]) -> float:
    """Mean |accuracy - confidence| over the bins, weighted by their counts."""
    total = sum(n for n, _, _ in bins)
    return float(sum(abs(right - conf) for n, conf, right in bins if n) / max(1, total))


def _raster(boxes: list[Box], n: int) -> np.ndarray:
    labels = [SignalLabel("x", "psk", b.start, b.stop, b.f_low, b.f_high, 0.0) for b in boxes]
    return cell_labels(labels, n, GRID_FFT, GRID_FFT) > 0


def _bins(boxes: list[Box]) -> np.ndarray:
    occ = np.zeros(GRID_FFT, bool)
    freqs = (np.arange(GRID_FFT) - GRID_FFT // 2) / GRID_FFT
    for b in boxes:
        occ |= (freqs >= b.f_low) & (freqs <= b.f_high)
    return occ


def overlapping(boxes: list[Box]) -> list[int]:
    """Indices of the boxes that share time-frequency area with another box."""
    return [i for i, a in enumerate(boxes)
            if any(iou(a, b) > 0 for j, b in enumerate(boxes) if j != i)]


def hidden(boxes: list[Box], share: float = 0.5, grid: int = 32) -> list[int]:
    """Indices of the boxes that stronger ones (higher in-band SNR) cover over more than
    ``share`` of their area (measured on ``grid`` x ``grid`` points inside each box)."""
    out = []
    u = (np.arange(grid) + 0.5) / grid
    for i, a in enumerate(boxes):
        t = a.start + u[:, None] * (a.stop - a.start)
        f = a.f_low + u[None, :] * (a.f_high - a.f_low)
        covered = np.zeros((grid, grid), bool)
        for b in boxes:
            if b.snr_db > a.snr_db:
                covered |= (t >= b.start) & (t < b.stop) & (f >= b.f_low) & (f <= b.f_high)
        if covered.mean() > share:
            out.append(i)
    return out


class Tally:
    def __init__(self):
        self.tp_cells = self.fp_cells = self.fn_cells = 0
        self.truth = self.pred = self.matched = self.labels_ok = 0
        self.overlapped = self.matched_overlapped = 0
        self.hidden = self.matched_hidden = 0
        self.labels: dict[str, dict[str, int]] = {}  # truth family -> predicted -> count
        self.samples = 0
        self.seconds = 0.0  # recorded time at each recording's rate
        self.bin_ok = self.bin_total = 0
        self.has_labels = False
        self.confidences: list[tuple[float, bool]] = []  # (confidence, best family right?)

    def add(self, truth: list[Box], pred: list[Box], n: int, rate: float = RATE) -> None:
        t, p = _raster(truth, n), _raster(pred, n)
        self.tp_cells += int(np.sum(t & p))
        self.fp_cells += int(np.sum(~t & p))
        self.fn_cells += int(np.sum(t & ~p))
        pairs = match(truth, pred)
        self.truth += len(truth)
        self.pred += len(pred)
        self.matched += len(pairs)
        hit = {i for i, _ in pairs}
        for i in overlapping(truth):
            self.overlapped += 1
            self.matched_overlapped += i in hit
        for i in hidden(truth):
            self.hidden += 1
            self.matched_hidden += i in hit
        self.labels_ok += sum(truth[i].label == pred[j].label for i, j in pairs)
        for i, j in pairs:
            row = self.labels.setdefault(truth[i].label, {})
            row[pred[j].label] = row.get(pred[j].label, 0) + 1
        self.has_labels |= any(b.label != "signal" for b in pred)
        self.confidences += [(pred[j].label_confidence, pred[j].guess == truth[i].label)
                             for i, j in pairs if pred[j].label_confidence is not None]
        self.samples += n
        self.seconds += n / rate
        self.bin_ok += int(np.sum(_bins(truth) == _bins(pred)))
        self.bin_total += GRID_FFT

    def row(self) -> dict:
        prec = self.tp_cells / max(1, self.tp_cells + self.fp_cells)
        rec = self.tp_cells / max(1, self.tp_cells + self.fn_cells)
        det_rec, det_prec = self.matched / max(1, self.truth), self.matched / max(1, self.pred)
        return {
            "cell_precision": prec, "cell_recall": rec,
            "cell_f1": 2 * prec * rec / max(1e-12, prec + rec),
            "det_recall": det_rec,
            "det_precision": det_prec,
            "det_f1": 2 * det_prec * det_rec / max(1e-12, det_prec + det_rec),
            "det_recall_isolated": (self.matched - self.matched_overlapped) / max(
                1, self.truth - self.overlapped),
            "det_recall_overlapped": self.matched_overlapped / max(1, self.overlapped),
            "hidden_share": self.hidden / max(1, self.truth),
            "det_recall_visible": (self.matched - self.matched_hidden) / max(
                1, self.truth - self.hidden),
            "false_alarms_per_s": (self.pred - self.matched) / max(self.seconds, 1e-12),
            "label_accuracy": (self.labels_ok / max(1, self.matched)) if self.has_labels
            else None,
            "bin_accuracy": self.bin_ok / max(1, self.bin_total),
            "label_confusion": self.labels if self.has_labels else None,
            "label_reliability": reliability(self.confidences) if self.confidences else None,
        }


def evaluate(detectors: dict, scenes_per_bucket: int = 16, seed: int = 7,
             samples: int = 262144, progress=None, floor_tilt_db: float = 0.0) -> dict:
    """{bucket: {detector: metrics}}; ``detectors`` maps a name to detect(x) -> [Box];
    ``floor_tilt_db``: the scenes' noise floor tilted by up to that (the same signals)."""
    table = {}
    total = len(BUCKETS) * scenes_per_bucket
    done = 0
    for lo, hi in BUCKETS:
        cfg = SceneConfig(samples=samples, snr_db=(lo, hi), floor_tilt_db=floor_tilt_db)
        tallies = {name: Tally() for name in detectors}
        for k in range(scenes_per_bucket):
            rng = np.random.default_rng([seed, lo + 100, k])
            x, labels = scene(rng, cfg, n_signals=int(rng.integers(1, cfg.max_signals + 1)))
            truth = [Box(s.start, s.stop, s.f_low, s.f_high, s.label, s.snr_db)
                     for s in labels]
            for name, detect in detectors.items():
                tallies[name].add(truth, detect(x), len(x))
            done += 1
            if progress is not None:
                progress(done, total)
        table[f"{lo}..{hi} dB"] = {name: t.row() for name, t in tallies.items()}
    return table


def cfar_detect(**params):
    """A detect(x) for the evaluation, running the cfar_detector block."""
    from cvstream.blocks.cfar import CfarDetector

    def detect(x):
        block = CfarDetector(**params)
        block.start()
        block.process(x)
        block.flush()
        return boxes_from_messages(block.take_messages())
    return detect


def format_table(table: dict) -> str:
    head = ("SNR bucket | detector | cell P | cell R | cell F1 | det recall | det precision "
            "| det F1 | recall isolated | recall overlapped | hidden | recall visible "
            "| false alarms/s | label acc | bin acc")
    lines = [head, "|".join(["---"] * 15)]
    for bucket, rows in table.items():
        for name, m in rows.items():
            label = "n/a" if m["label_accuracy"] is None else f"{m['label_accuracy']:.3f}"
            lines.append(f"{bucket} | {name} | {m['cell_precision']:.3f} | "
                         f"{m['cell_recall']:.3f} | {m['cell_f1']:.3f} | {m['det_recall']:.3f}"
                         f" | {m['det_precision']:.3f} | {m['det_f1']:.3f} | "
                         f"{m['det_recall_isolated']:.3f} | {m['det_recall_overlapped']:.3f} | "
                         f"{m['hidden_share']:.3f} | {m['det_recall_visible']:.3f} | "
                         f"{m['false_alarms_per_s']:.0f} | {label} | {m['bin_accuracy']:.4f}")
    return "\n".join(lines)


def format_labels(table: dict, detector: str = "segmenter", min_snr: float = 0.0) -> str:
    """The detector's family labels on its matched detections, summed over the buckets from
    ``min_snr`` up: truth family -> predicted family counts."""
    from .waveforms import CLASSES
    counts: dict[str, dict[str, int]] = {}
    for bucket, rows in table.items():
        if float(bucket.split("..")[0]) < min_snr or detector not in rows:
            continue
        for truth, row in (rows[detector].get("label_confusion") or {}).items():
            mine = counts.setdefault(truth, {})
            for pred, n in row.items():
                mine[pred] = mine.get(pred, 0) + n
    columns = list(CLASSES) + ["unknown"]
    lines = [f"{detector} labels of matched detections at >= {min_snr:g} dB "
             "(truth \\ predicted):",
             "family | " + " | ".join(columns) + " | accuracy | accuracy of the named",
             "|".join(["---"] * (len(columns) + 3))]
    for truth in CLASSES:
        row = counts.get(truth, {})
        total = sum(row.values())
        named = total - row.get("unknown", 0)
        accuracy = f"{row.get(truth, 0) / total:.2f}" if total else "-"
        of_named = f"{row.get(truth, 0) / named:.2f}" if named else "-"
        lines.append(f"{truth} | " + " | ".join(str(row.get(c, 0)) for c in columns) +
                     f" | {accuracy} | {of_named}")
    return "\n".join(lines)


def summed_reliability(table: dict, detector: str = "segmenter",
                       min_snr: float = 0.0) -> list[list]:
    """The detector's reliability bins summed over the buckets from ``min_snr`` up."""
    bins = [[0, 0.0, 0] for _ in range(RELIABILITY_BINS)]
    for bucket, rows in table.items():
        if float(bucket.split("..")[0]) < min_snr or detector not in rows:
            continue
        for mine, theirs in zip(bins, rows[detector].get("label_reliability") or []):
            for k in range(3):
                mine[k] += theirs[k]
    return bins


def plot_reliability(tables: dict, path: str, detector: str = "segmenter",
                     min_snr: float = 0.0) -> str:
    """The family classifier's reliability diagram as a PNG: accuracy against calibrated
    confidence per bin, one curve per generator of ``tables`` ({generator: table})."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for generator, table in tables.items():
        bins = summed_reliability(table, detector, min_snr)
        cells = [(conf / n, right / n, n) for n, conf, right in bins if n]
        ax.plot([c[0] for c in cells], [c[1] for c in cells], "o-",
                label=f"{generator} (ECE {expected_calibration_error(bins):.3f})")
        for x, y, n in cells:
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10),
                        fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("calibrated confidence of the best family")
    ax.set_ylabel("share right (labels: detections)")
    ax.set_title(f"{detector}: family reliability, matched detections >= {min_snr:g} dB")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_reliability(table: dict, detector: str = "segmenter", min_snr: float = 0.0) -> str:
    """The family classifier's reliability on the detector's matched detections from
    ``min_snr`` up: per bin of its calibrated confidence, how often its best family was
    right, and the expected calibration error."""
    bins = summed_reliability(table, detector, min_snr)
    total = sum(n for n, _, _ in bins)
    lines = [f"{detector}: family confidence against accuracy, matched detections at >= "
             f"{min_snr:g} dB ({total}; expected calibration error "
             f"{expected_calibration_error(bins):.3f})",
             "confidence | detections | mean confidence | accuracy", "---|---|---|---"]
    for k, (n, conf, right) in enumerate(bins):
        lo, hi = k / RELIABILITY_BINS, (k + 1) / RELIABILITY_BINS
        cells = (f"{conf / n:.2f} | {right / n:.2f}" if n else "- | -")
        lines.append(f"{lo:.1f}-{hi:.1f} | {n} | {cells}")
    return "\n".join(lines)


def format_side_by_side(tables: dict) -> str:
    """Detection F1 and label accuracy per bucket and detector, one column per generator."""
    gens = list(tables)
    lines = ["SNR bucket | detector | " + " | ".join(f"det F1 ({g})" for g in gens) + " | "
             + " | ".join(f"label acc ({g})" for g in gens),
             "|".join(["---"] * (2 + 2 * len(gens)))]
    buckets = [b for b in tables[gens[0]] if all(b in tables[g] for g in gens)]
    for bucket in buckets:
        for name in tables[gens[0]][bucket]:
            rows = [tables[g][bucket][name] for g in gens]
            acc = ["n/a" if r["label_accuracy"] is None else f"{r['label_accuracy']:.3f}"
                   for r in rows]
            lines.append(f"{bucket} | {name} | " + " | ".join(f"{r['det_f1']:.3f}" for r in rows)
                         + " | " + " | ".join(acc))
    return "\n".join(lines)
