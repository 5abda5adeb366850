"""The block API: declare ports and parameters once, write ``work`` over numpy arrays.

Kinds (set by the base class a block derives from):
  Source    work() -> items (or None when nothing is ready; raise EndOfStream at the end)
  Sink      work(*inputs) consumes items
  SyncBlock work(*inputs) -> as many items as it was given (1:1)
  GeneralBlock work(*inputs) -> any number of items (own buffering)
  RateBlock work(*inputs) -> n * interp / decim items for n new items, given `history` old
            items in front; `max_chunks` caps n at that many multiples of `decim`
            (a fixed-chunk block receives exactly decim items plus history).
Message ports: ``self.emit(msg)`` sends a dict; ``on_message(port, msg)`` receives one.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, ClassVar

import numpy as np

from .chunk import Tag, rebase_tags
from .dtypes import PortType
from .errors import CvstreamError, ParamError
from .params import INPUT_FILE, OUTPUT_FILE, Param
from .ports import BoundPort, Port


class Block:
    """Base class of every block. Subclass one of Source, Sink, SyncBlock, RateBlock."""

    kind: ClassVar[str] = "sync"
    type_name: ClassVar[str] = ""
    #: "all": tags of every input go to every output (rebased); "none": the block handles tags
    tag_propagation: ClassVar[str] = "all"
    #: work() may wait (sleeps, waits on its own threads or on I/O): the block gets a thread
    #: of its own instead of a pool worker (live sources always do)
    blocking: ClassVar[bool] = False
    #: work() depends on its inputs (and ``history``) only, never on earlier calls: copies
    #: may share the stream (``replicas: N``). A block whose work has a stateless part
    #: overrides ``compute`` and ``absorb`` instead.
    stateless: ClassVar[bool] = False
    _runtime = None  # set by the runner: shared stop/abort flags
    _ended = False
    _param_decls: ClassVar[dict[str, Param]] = {}
    _port_decls: ClassVar[list[Port]] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params: dict[str, Param] = {}
        ports: dict[str, Port] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Param):
                    params[name] = value
                elif isinstance(value, Port):
                    ports[name] = value
        cls._param_decls = params
        cls._port_decls = list(ports.values())
        # a class with an __init__ of its own keeps that signature
        cls.__signature__ = _signature(params) if cls.__init__ is Block.__init__ else None

    def __init__(self, **params: Any):
        self.name = str(params.pop("name", None) or self.type_name or type(self).__name__)
        decls = self._param_decls
        for key in params:
            if key not in decls:
                near = difflib.get_close_matches(key, list(decls), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise ParamError(key, f"unknown parameter{hint}")
        values = {}
        for key, decl in decls.items():
            if key in params:
                values[key] = decl.coerce(params[key])
            elif decl.required:
                raise ParamError(key, "missing (required)")
            else:
                values[key] = decl.default
        self.__dict__.update(values)
        self.params = values
        self._out_tags: list[tuple[str | None, int, str, Any]] = []
        self._messages: list[tuple[str | None, dict]] = []
        self._emit_hook = None
        self.offset = 0
        self.input_tags: list[Tag] = []
        self.counters: dict[str, int] = {}
        self.check()

    # ---- declarations -------------------------------------------------------------------
    def check(self) -> None:
        """Cross-parameter validation; raise ParamError(field, message)."""

    def ports(self) -> list[BoundPort]:
        """This instance's ports (parameter references resolved). Override for dynamic ports."""
        return [p.bind().resolved(self.params) for p in self._port_decls]

    def inputs(self) -> list[BoundPort]:
        return [p for p in self.ports() if p.direction == "in"]

    def outputs(self) -> list[BoundPort]:
        return [p for p in self.ports() if p.direction == "out"]

    def output_types(self, in_types: dict[str, PortType]) -> dict[str, PortType]:
        """Types of stream outputs given the connected input types."""
        out = {}
        for port in self.outputs():
            if port.is_message:
                continue
            if port.like is not None:
                if port.like not in in_types:
                    raise CvstreamError(f"output '{port.name}' copies the type of "
                                        f"unconnected input '{port.like}'")
                base = in_types[port.like]
                out[port.name] = PortType(port.dtype or base.dtype,
                                          base.shape if port.shape is None else port.shape)
            else:
                out[port.name] = port.fixed_type()
        return self._propagate_rate(out, in_types)

    def _propagate_rate(self, out: dict, in_types: dict) -> dict:
        """Outputs without a known rate take the first input's rate, scaled interp/decim."""
        rates = [t.rate for t in in_types.values() if t is not None and t.rate]
        if not rates:
            return out
        scale = getattr(self, "interp", 1) / getattr(self, "decim", 1)
        return {name: t.with_rate(rates[0] * scale) if t is not None and t.rate is None
                else t for name, t in out.items()}

    def file_problems(self) -> list[tuple[str, str]]:
        """(field, message) for input files that cannot be read or outputs that cannot be
        written."""
        problems = []
        for key, decl in self._param_decls.items():
            value = self.params.get(key)
            if value is None or decl.kind not in (INPUT_FILE, OUTPUT_FILE):
                continue
            msg = decl.kind.check(value)
            if msg:
                problems.append((key, msg))
        return problems

    # ---- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Open files, sockets; called once in the block's own thread before work."""

    def stop(self) -> None:
        """Flush and close; always called, also after errors."""

    def finish(self):
        """Called at end of stream; may return final output items like work()."""
        return None

    def on_message(self, port: str, msg: dict) -> None:
        """Handle one message arriving on a message input port."""
        raise CvstreamError(f"block {self.type_name} does not handle messages on '{port}'")

    @property
    def stopping(self) -> bool:
        """True once the graph was asked to stop (live sources/sinks should wrap up)."""
        return self._runtime is not None and (self._runtime.stopping.is_set()
                                              or self._runtime.abort.is_set())

    def end_stream(self) -> None:
        """Declare that this block is done after the current work call (e.g. ``head``)."""
        self._ended = True

    def count(self, name: str, n: int = 1) -> None:
        """Increment a named counter shown in the stats (drops, malformed frames, misses...)."""
        self.counters[name] = self.counters.get(name, 0) + n

    # ---- replicas: the stateless part of work on copies of the block ------------------------
    def replica_problem(self) -> str | None:
        """Why this block cannot have replicas (None when it can)."""
        if self.stateless or type(self).compute is not Block.compute:
            return None
        return f"{self.type_name or type(self).__name__} keeps state from one chunk to the next"

    def compute(self, *inputs):
        """The stateless part of ``work``, run by replicas on their own copies of the block
        (started, never fed anything else); by default ``work`` itself."""
        return self.work(*inputs)

    def absorb(self, result, *inputs):
        """Turn one ``compute`` result into what ``work`` returns; called in stream order on
        the block itself, with ``offset`` and ``input_tags`` of that chunk (the stateful
        part: default, the result as it is)."""
        return result

    # ---- outputs besides items -----------------------------------------------------------
    def emit(self, msg: dict, port: str | None = None) -> None:
        """Send a message (a dict) on a message output port (the first one if not named)."""
        if self._emit_hook is not None:
            self._emit_hook(port, msg)
        else:
            self._messages.append((port, msg))

    def add_tag(self, index: int, key: str, value: Any, port: str | None = None) -> None:
        """Attach a tag to item ``index`` (relative to the chunk returned by this work call)."""
        self._out_tags.append((port, index, key, value))

    def take_messages(self) -> list[dict]:
        """Messages emitted while used outside a flow graph (and clears them)."""
        msgs = [m for _, m in self._messages]
        self._messages.clear()
        return msgs

    # ---- use outside a flow graph --------------------------------------------------------
    def _ensure_started(self) -> None:
        """process() starts the block on first use (a graph calls start() itself)."""
        if not self.__dict__.get("_standalone_started"):
            self._standalone_started = True
            self.start()

    def process(self, *inputs):
        """Run the block on plain numpy arrays, keeping state between calls (stream order)."""
        raise CvstreamError(f"{self.type_name} cannot be used with process()")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


_PYTYPES = {"int": int, "float": float, "complex": complex, "bool": bool, "str": str}


def _signature(params: dict[str, Param]) -> inspect.Signature:
    """``Block(name=None, *, param=default, ...)`` as help(), IDEs and inspect show it."""
    from .params import REQUIRED
    out = [inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=str)]
    for key, decl in params.items():
        default = inspect.Parameter.empty if decl.default is REQUIRED else decl.default
        out.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default,
                                     annotation=_PYTYPES.get(decl.kind.name, Any)))
    return inspect.Signature(out)


def _read_only(x) -> np.ndarray:
    view = np.asarray(x).view()
    view.flags.writeable = False
    return view


def _joined(outs: tuple):
    """A Driver's outputs as process() returns them: None, one array, or a tuple."""
    if not outs:
        return None
    return outs[0] if len(outs) == 1 else outs


def _as_outputs(result, n_out: int) -> tuple:
    if n_out == 1 and not isinstance(result, tuple):
        return (result,)
    return tuple(result)


class Source(Block):
    """Produces items. ``work()`` returns an array (or a tuple, one per output), None when no
    data is ready yet, or raises EndOfStream. ``live`` sources may drop when downstream is full."""

    kind = "source"
    live: ClassVar[bool] = False

    def total_items(self) -> int | None:
        """Items this source will produce, when known (drives the progress bar)."""
        return None

    def process(self, *inputs):
        raise CvstreamError("sources have no inputs; iterate with read() instead")

    def read(self, max_chunks: int | None = None):
        """Yield chunks (arrays) outside a flow graph until the end of the stream."""
        from .errors import EndOfStream
        self.start()
        try:
            n = 0
            while max_chunks is None or n < max_chunks:
                try:
                    out = self.work()
                except EndOfStream:
                    return
                if out is not None:
                    n += 1
                    yield out
        finally:
            self.stop()


class SyncBlock(Block):
    """One item out for every item in. ``work(*inputs)`` returns array(s) of equal length.

    ``inplace = True`` declares that work may write its output over its input when the
    input array is writable (the runtime hands a writable array only when nothing else
    reads it: inside a fused chain, after a block that declares the same), and that what
    work returns is a fresh array or its input, never memory the block keeps."""

    kind = "sync"
    inplace: ClassVar[bool] = False

    def process(self, *inputs):
        self._ensure_started()
        arrays = [_read_only(x) for x in inputs]  # the caller's arrays are never written
        result = self.work(*arrays)
        self.offset += len(arrays[0]) if arrays else 0
        return result


class GeneralBlock(SyncBlock):
    """Any number of items out per call (a block with its own buffering, e.g. one that
    frames the stream internally). Inputs are aligned like a SyncBlock's; tags keep their
    position relative to the start of the call's output. ``finish()`` may return the rest."""

    kind = "general"

    def flush(self):
        """End of stream outside a flow graph: whatever ``finish()`` returns."""
        return self.finish()


class Sink(Block):
    """Consumes items (and/or messages); ``work(*inputs)`` returns nothing."""

    kind = "sink"

    def process(self, *inputs):
        self._ensure_started()
        self.work(*[np.asarray(x) for x in inputs])
        self.offset += len(inputs[0]) if inputs else 0


class RateBlock(Block):
    """Changes the item rate by interp/decim and may look at ``history`` past items.

    The runtime hands ``work`` the last ``history`` items followed by n new items, n a
    multiple of ``decim`` (exactly ``decim`` when ``max_chunks`` is 1); work returns
    n * interp / decim items. At end of stream a partial chunk is zero-padded and the
    output trimmed to match (``pad_tail`` False drops it instead, counted as tail_dropped).
    """

    kind = "rate"
    decim: int = 1
    interp: int = 1
    history: int = 0
    max_chunks: int | None = None
    pad_tail: bool = True

    def process(self, *inputs):
        """Stream arrays through the block; returns what could be produced so far."""
        self._ensure_started()
        driver = self.__dict__.get("_driver")
        if driver is None:
            from .embed import Driver
            n_out = len([p for p in self.outputs() if not p.is_message])
            driver = self._driver = Driver(
                self, [(np.asarray(x).dtype, np.shape(x)[1:]) for x in inputs], n_out)
        return _joined(driver.push([np.asarray(x) for x in inputs], [])[0])

    def flush(self):
        """End of stream outside a flow graph: pad the partial chunk, run ``finish()``, and
        return what is left."""
        driver = self.__dict__.get("_driver")
        return None if driver is None else _joined(driver.flush()[0])

    def rebase(self, tags: list[Tag], in_start: int, out_start: int) -> list[Tag]:
        return rebase_tags(tags, in_start, out_start, self.interp, self.decim)
