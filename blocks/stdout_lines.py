"""Lines a sink writes to standard output (``StdoutLines``), for as long as someone reads
them: a reader that goes (``cvstream run graph.yml | head``, a ``jq`` that exits) ends the
writing, not the graph."""
from __future__ import annotations

import os
import sys

_gone = False   # standard output's reader has gone: every sink's later lines are counted


class StdoutLines:
    """Writes lines to standard output for ``block``. Once its reader has gone (a closed
    pipe), the block's later lines are counted as ``unwritten_lines`` instead, after one
    line on standard error, and the graph goes on (its other sinks complete); standard
    output is pointed at /dev/null then, or Python's own flush at exit would fail on it
    once more."""

    def __init__(self, block):
        self.block = block

    def write(self, lines: list[str]) -> None:
        """Write ``lines`` (each without its newline) and flush them."""
        global _gone
        if not _gone:
            try:
                sys.stdout.write("".join(line + "\n" for line in lines))
                sys.stdout.flush()
                return
            except BrokenPipeError:
                _gone = True
                print(f"cvstream: {self.block.name}: standard output closed (its reader "
                      "ended); later lines are counted as unwritten_lines", file=sys.stderr)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
        self.block.count("unwritten_lines", len(lines))
