"""Per-block counters and timings, the exit table and the JSON report."""
from __future__ import annotations

import json
import time

import numpy as np

WORK_SAMPLES = 8192


class BlockStats:
    """What one block did: items in/out, messages, work-time distribution, counters."""

    def __init__(self, name: str, type_name: str):
        self.name = name
        self.type_name = type_name
        self.items_in = 0
        self.items_out = 0
        self.msgs_in = 0
        self.msgs_out = 0
        self.calls = 0
        self._times = [0.0] * WORK_SAMPLES  # a ring; a list takes a float fastest
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.total_items: int | None = None
        self.fused: list[str] | None = None  # the chain this block runs in, when fused

    def record(self, seconds: float) -> None:
        self._times[self.calls % WORK_SAMPLES] = seconds
        self.calls += 1

    def elapsed(self) -> float:
        end = self.ended if self.ended is not None else time.perf_counter()
        return max(end - self.started, 1e-9)

    def work_percentiles(self) -> tuple[float, float, float]:
        n = min(self.calls, WORK_SAMPLES)
        if not n:
            return 0.0, 0.0, 0.0
        t = np.asarray(self._times[:n])
        p50, p99 = np.percentile(t, [50, 99])
        return float(p50), float(p99), float(t.max())


def snapshot(stats: dict[str, BlockStats], blocks: dict, buffers: dict) -> dict:
    """A JSON-ready picture of the run: per block, and per connection buffer."""
    out = {"blocks": {}, "buffers": {}}
    for name, st in stats.items():
        p50, p99, pmax = st.work_percentiles()
        items = max(st.items_out, st.items_in)
        out["blocks"][name] = {
            "type": st.type_name,
            "items_in": st.items_in,
            "items_out": st.items_out,
            "messages_in": st.msgs_in,
            "messages_out": st.msgs_out,
            "work_calls": st.calls,
            "seconds": round(st.elapsed(), 6),
            "throughput_items_per_s": items / st.elapsed(),
            "work_p50_us": p50 * 1e6,
            "work_p99_us": p99 * 1e6,
            "work_max_us": pmax * 1e6,
            "counters": dict(blocks[name].counters),
            "fused_with": [n for n in st.fused if n != name] if st.fused else [],
        }
    for label, buf in buffers.items():
        out["buffers"][label] = {
            "capacity": buf.capacity,
            "fill": buf.fill,
            "max_fill": buf.max_fill,
            "max_fill_pct": 100.0 * buf.max_fill / buf.capacity,
            "dropped": buf.dropped,
        }
    return out


def _rate(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def format_table(snap: dict) -> str:
    """The stats table printed at exit with --stats (and refreshed live on a terminal)."""
    blocks = snap["blocks"]
    if any("fragment" in b for b in blocks.values()):  # a distributed run: name its part
        blocks = {f"{b['fragment']}/{n}": b for n, b in blocks.items()}
    wn = max([len("block")] + [len(n) for n in blocks]) + 2
    wt = max([len("type")] + [len(b["type"]) for b in blocks.values()]) + 2
    tasks: dict[frozenset, int] = {}
    head = (f"{'block':<{wn}}{'type':<{wt}}{'task':>5}{'items in':>11}{'out':>11}{'msgs':>9}"
            f"{'items/s':>10}{'p50 us':>9}{'p99 us':>9}{'max us':>9}  counters")
    lines = [head, "-" * len(head)]
    for name, b in blocks.items():
        task = tasks.setdefault(frozenset([name, *(f"{b['fragment']}/{m}" if "fragment" in b
                                                   else m for m in b.get("fused_with", []))]),
                                len(tasks) + 1)
        counters = " ".join(f"{k}={v}" for k, v in b["counters"].items() if v)
        msgs = f"{b['messages_in']}/{b['messages_out']}" if b["messages_in"] or \
            b["messages_out"] else ""
        lines.append(f"{name:<{wn}}{b['type']:<{wt}}{task:>5}{b['items_in']:>11}"
                     f"{b['items_out']:>11}{msgs:>9}"
                     f"{_rate(b['throughput_items_per_s']):>10}{b['work_p50_us']:>9.0f}"
                     f"{b['work_p99_us']:>9.0f}{b['work_max_us']:>9.0f}  {counters}")
    if len(tasks) < len(blocks):
        lines.append("(blocks with the same task number run fused: one thread, no buffer "
                     "between them)")
    if snap["buffers"]:
        wb = max(len("buffer"), *(len(label) for label in snap["buffers"])) + 2
        lines.append("")
        lines.append(f"{'buffer':<{wb}}{'capacity':>10}{'max fill':>10}{'dropped':>10}")
        for label, b in snap["buffers"].items():
            lines.append(f"{label:<{wb}}{b['capacity']:>10}{b['max_fill_pct']:>9.0f}%"
                         f"{b['dropped']:>10}")
    return "\n".join(lines)


def write_json(snap: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(snap, fh, indent=2, default=str)
        fh.write("\n")
