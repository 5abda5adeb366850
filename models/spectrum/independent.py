"""The independent evaluation set: wideband recordings made by GNU Radio's own modulators,
channel model, pulse shapes and rates (``gnuradio_scenes.py``, run under Debian's python3),
scored with the same table as the project's synthetic scenes. Never used for training.

The recordings are generated once per (seed, count, generator version) and kept in
``~/.cache/cvstream`` (or ``CVSTREAM_CACHE``).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvstream.errors import CvstreamError

from .evaluate import BUCKETS, Box, Tally, match

GR_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("gnuradio_scenes.py")
#: the SNR buckets the GNU Radio set covers (its signals are drawn at 0-30 dB)
GR_BUCKETS = tuple(b for b in BUCKETS if b[0] >= 0)


def cache_dir(seed: int, per_bucket: int) -> Path:
    version = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:10]
    root = Path(os.environ.get("CVSTREAM_CACHE", Path.home() / ".cache" / "cvstream"))
    return root / f"spectrum-gnuradio-{version}-{seed}-{per_bucket}"


def generate(out_dir: Path, per_bucket: int, seed: int, progress=None) -> Path:
    """Run the GNU Radio generator (skipped when ``out_dir`` is complete)."""
    count = per_bucket * len(GR_BUCKETS)
    if (out_dir / "done").exists():
        return out_dir
    if not os.path.exists(GR_PYTHON):
        raise CvstreamError("the GNU Radio evaluation set needs Debian's gnuradio package "
                            "(apt-get install gnuradio)")
    out_dir.mkdir(parents=True, exist_ok=True)
    buckets = ",".join(f"{lo}:{hi}" for lo, hi in GR_BUCKETS)
    proc = subprocess.Popen([GR_PYTHON, str(SCRIPT), str(out_dir), str(count), str(seed),
                             buckets], stderr=subprocess.PIPE, text=True)
    err = []
    for line in proc.stderr:
        if line.startswith("recording ") and progress is not None:
            done, total = line.split()[1].split("/")
            progress(int(done), int(total))
        else:
            err.append(line)
    if proc.wait() != 0:
        raise CvstreamError("the GNU Radio generator failed: " + "".join(err[-5:]).strip())
    (out_dir / "done").write_text(str(count))
    return out_dir


def recordings(out_dir: Path):
    """(bucket, samples, rate, truth boxes) for every recording, in order."""
    for meta in sorted(out_dir.glob("*.json")):
        info = json.loads(meta.read_text())
        x = np.fromfile(meta.with_suffix(".cf32"), np.complex64)
        truth = [Box(s["start"], s["stop"], s["f_low"], s["f_high"], s["family"], s["snr_db"])
                 for s in info["signals"]]
        yield tuple(info["bucket"]), x, info["rate"], truth, info["signals"]


def evaluate(detectors: dict, per_bucket: int = 12, seeds: Sequence[int] = (2026,),
             progress=None) -> tuple[dict, dict]:
    """{bucket: {detector: metrics}} as ``evaluate.evaluate`` gives for the project's scenes,
    and extras per detector: CW-tone recall at >= 10 dB and recall of narrow signals (under
    0.5 % of the band) per bucket; over the sets of all ``seeds`` pooled (each generated
    once and cached)."""
    folders = [generate(cache_dir(seed, per_bucket), per_bucket, seed, progress)
               for seed in seeds]
    tallies = {b: {name: Tally() for name in detectors} for b in GR_BUCKETS}
    extras = {name: {"cw": [0, 0], "narrow": {b: [0, 0] for b in GR_BUCKETS},
                     "lenient": {b: [0, 0, 0] for b in GR_BUCKETS}} for name in detectors}
    total = len(folders) * per_bucket * len(GR_BUCKETS)
    every = (r for folder in folders for r in recordings(folder))
    for done, (bucket, x, rate, truth, signals) in enumerate(every, 1):
        for name, detect in detectors.items():
            pred = detect(x)
            tallies[bucket][name].add(truth, pred, len(x), rate=rate)
            hit = {i for i, _ in match(truth, pred)}
            lenient = extras[name]["lenient"][bucket]
            lenient[0] += len(match_lenient(truth, pred))
            lenient[1] += len(truth)
            lenient[2] += len(pred)
            for i, s in enumerate(signals):
                if s["modulation"] == "cw" and s["snr_db"] >= 10:
                    extras[name]["cw"][0] += i in hit
                    extras[name]["cw"][1] += 1
                if s["f_high"] - s["f_low"] < 0.005:
                    extras[name]["narrow"][bucket][0] += i in hit
                    extras[name]["narrow"][bucket][1] += 1
        if progress is not None:
            progress(done, total)
    table = {f"{lo}..{hi} dB": {name: t.row() for name, t in rows.items()}
             for (lo, hi), rows in tallies.items()}
    return table, extras


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """IoU of two intervals."""
    return max(0.0, min(a1, b1) - max(a0, b0)) / max(max(a1, b1) - min(a0, b0), 1e-12)


def _lenient_score(t: Box, p: Box) -> float:
    """Frequency IoU of boxes whose time IoU is at least 0.5 (else 0)."""
    if _overlap(t.start, t.stop, p.start, p.stop) < 0.5:
        return 0.0
    return _overlap(t.f_low, t.f_high, p.f_low, p.f_high)


def match_lenient(truth: list[Box], pred: list[Box]) -> list[tuple[int, int]]:
    """Matching at time IoU >= 0.5 and frequency IoU >= 0.3 (a looser rule than the table's
    time-frequency IoU >= 0.5: edges count less)."""
    return match(truth, pred, 0.3, _lenient_score)


def format_extras(extras: dict) -> str:
    head = "detector | CW tones found (>= 10 dB) | " + " | ".join(
        f"narrow (< 0.5 % of band) found, {lo}..{hi} dB" for lo, hi in GR_BUCKETS) + " | " + \
        " | ".join(f"det F1 at time IoU 0.5, freq IoU 0.3, {lo}..{hi} dB" for lo, hi in GR_BUCKETS)
    lines = [head, "|".join(["---"] * (2 + 2 * len(GR_BUCKETS)))]
    for name, e in extras.items():
        cells = [f"{e['cw'][0]} of {e['cw'][1]}"] + [
            f"{e['narrow'][b][0]} of {e['narrow'][b][1]}" for b in GR_BUCKETS]
        for b in GR_BUCKETS:
            hit, n_truth, n_pred = e["lenient"][b]
            rec, prec = hit / max(1, n_truth), hit / max(1, n_pred)
            cells.append(f"{2 * rec * prec / max(rec + prec, 1e-12):.3f}")
        lines.append(f"{name} | " + " | ".join(cells))
    return "\n".join(lines)
