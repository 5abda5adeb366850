"""Simple sinks: null_sink (discard) and message_sink (JSON lines)."""
from __future__ import annotations

from cvstream import In, MsgIn, Param, Sink, register
from cvstream.messages import dumps

from .stdout_lines import StdoutLines


@register("null_sink")
class NullSink(Sink):
    """Discard items (counted in the stats).

    Ports: in (any). Example: ``snk: {type: null_sink}``
    """

    inp = In(None, None)

    def work(self, x):
        pass


@register("message_sink")
class MessageSink(Sink):
    """Write each message as one JSON line to a file (or ``-`` for standard output; where
    its reader ends, as ``| head`` does, the rest are counted as ``unwritten_lines``).

    Any message is written: keys that are not strings (PMT dicts allow any key) become their
    JSON text, arrays lists, complex numbers ``[re, im]``, NaN and infinities strings.

    Ports: in (message). Latency: lines are flushed as they arrive.
    Example: ``log: {type: message_sink, path: detections.jsonl}``
    """

    inp = MsgIn(doc="messages (dicts)")
    path = Param(str, default="-", doc="output file, '-' for standard output")

    def file_problems(self):
        if self.path == "-":
            return []
        from cvstream.params import OUTPUT_FILE
        msg = OUTPUT_FILE.check(self.path)
        return [("path", msg)] if msg else []

    def start(self):
        self._stdout = StdoutLines(self) if self.path == "-" else None
        self._fh = None if self._stdout else open(self.path, "w", encoding="utf-8")

    def on_message(self, port, msg):
        if self._stdout is not None:
            self._stdout.write([dumps(msg)])
            return
        self._fh.write(dumps(msg) + "\n")
        self._fh.flush()

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
