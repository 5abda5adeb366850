"""Progress of long jobs (training, synthesis, evaluation) on stderr."""
from __future__ import annotations

import sys


def progress_printer(label: str):
    """A progress callback: redraws one line on a terminal, prints every 10 % otherwise."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int, loss: float | None = None) -> None:
        pct = int(100 * done / total)
        extra = f"  loss {loss:.4f}" if loss is not None else ""
        if tty:
            bar = "#" * (pct * 30 // 100)
            sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total}{extra}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif pct // 10 != last[0]:
            last[0] = pct // 10
            print(f"{label}: {done}/{total}{extra}", file=sys.stderr)
    return show
