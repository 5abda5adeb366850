"""A block's stateless ``compute`` in a process of its own: no GIL shared with the graph's
threads, so a block's own Python work (the segmenter's detections) and its FFTs and model
run side by side without paying each time the GIL changes hands (README, stop 82). Batches
go in through shared memory slots, one per call in flight, or, where a source read them
into the runtime's shared blocks (``cvstream.shared``), are read there without a copy;
results come back through slots of their own (the large results computed there in place).
A socket pair carries which slot or block and the results' layout, and each block's file
the first time one is named.

    worker = ProcessWorker(block, max_samples, result_bytes, slots=3)   # starts it
    worker.ready()                     # False while the process still starts
    call = worker.submit(x, True)      # as concurrent.futures: call.done(), call.result()
    worker.close()
"""
from __future__ import annotations

import mmap
import os
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection

import numpy as np

from cvstream import shared
from cvstream.errors import CvstreamError

#: seconds a closing worker gets to finish before it is stopped
CLOSE_TIMEOUT = 5.0
ALIGN = 64   # bytes: each array of a result starts on a cache line
#: glibc's malloc in the worker: a batch's arrays (megabytes each, freed when it is done)
#: come from a heap that keeps its memory, not fresh pages from the kernel each batch
#: (mmap'd above the threshold, or the heap's top given back past the trim threshold)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
#: and one BLAS thread (its matrices are 3 x 3): OpenBLAS's pool of one thread a core
#: costs about 0.2 s of CPU as it starts (where the user set none)
BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1"}
#: and no scipy.fftpack: pyFFTW's optional interface to it imports scipy, a third of a
#: second of the worker's start, for nothing it runs (the segmenter's modules import scipy
#: only in the detections' functions, which a worker that computes never calls)
LEAN = "sys.modules['scipy.fftpack'] = None"


def pack(values, memory: memoryview, start: int = 0) -> tuple | None:
    """Write the arrays of a (nested) tuple of arrays, None and small picklable values into
    ``memory`` from ``start`` on (an ``Arena`` of it that goes on from there), one after
    the other; the layout that ``unpack`` rebuilds it from, or None where they do not fit.
    An array that is another earlier in it is written once; one that already lies in
    ``memory`` (an ``Arena``'s, below ``start``) is not written at all, only named where
    it lies."""
    rest = Arena(memory, start)
    seen: dict[int, int] = {}   # id(array) -> where it was written
    base = _address(np.frombuffer(memory, np.uint8)) if len(memory) else 0
    fits = True

    def one(value):
        nonlocal fits
        if isinstance(value, tuple):   # a NamedTuple keeps its class
            return ("tuple", [one(v) for v in value],
                    type(value) if hasattr(value, "_fields") else None)
        if not isinstance(value, np.ndarray):
            return ("value", value)
        if id(value) in seen:
            return ("same", seen[id(value)])
        at = _address(value) - base
        if not (value.flags.c_contiguous and 0 <= at and at + value.nbytes <= start):
            at = rest.take(value.nbytes)
            if at is None:
                fits = False
                return None
            np.ndarray(value.shape, value.dtype, memory, at)[...] = value
        seen[id(value)] = at
        return ("array", at, value.shape, value.dtype.str)
    layout = one(values)
    return layout if fits else None


def _address(array: np.ndarray) -> int:
    """Where ``array``'s first element lies in this process's memory."""
    return array.__array_interface__["data"][0]


class Arena:
    """Arrays in a slot from ``used`` bytes on, one after the other, each ALIGN-aligned
    (``empty``, as ``np.empty``; a plain array once the slot is full): what ``compute``
    writes its large results into in a worker process, so that ``pack`` sends them
    without a copy, and where ``pack`` writes the rest."""

    def __init__(self, memory: memoryview, used: int = 0):
        self.memory, self.used = memory, used

    def take(self, nbytes: int) -> int | None:
        """The offset of ``nbytes`` more of the slot, or None where they do not fit."""
        start = -(-self.used // ALIGN) * ALIGN
        if start + nbytes > len(self.memory):
            return None
        self.used = start + nbytes
        return start

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        at = self.take(int(np.prod(shape)) * dtype.itemsize)
        if at is None:
            return np.empty(shape, dtype)
        return np.ndarray(shape, dtype, self.memory, at)


def unpack(layout: tuple, memory: memoryview, views: tuple = ()):
    """The values ``pack`` wrote, the arrays copied out of ``memory`` (its slot is
    reused) but for the items ``views`` of a top-level tuple (and all within an item that
    is a tuple), left in it."""
    copies: dict[int, np.ndarray] = {}

    def one(entry, view: bool = False):
        kind = entry[0]
        if kind == "tuple":
            values = [one(e, view or (k in views and entry is layout))
                      for k, e in enumerate(entry[1])]
            return entry[2](*values) if entry[2] is not None else tuple(values)
        if kind == "value":
            return entry[1]
        if kind == "same":
            return copies[entry[1]]
        _, start, shape, dtype = entry
        array = np.ndarray(shape, np.dtype(dtype), memory, start)
        copies[start] = array if view else array.copy()
        return copies[start]
    return one(layout)


class ProcessWorker:
    """A copy of ``block`` (its class and parameters, with ``overrides``), started in a
    fresh interpreter, that runs ``compute(x, track_psds, empty)`` on each batch
    submitted, in order (``empty``, as np.empty: an ``Arena`` of the call's slot, where
    compute puts its large results for ``pack`` to send without a copy).
    ``max_samples``: the complex64 samples a batch holds at most; ``result_bytes``:
    what a result's arrays take at most (a bigger one is computed here, by ``block``);
    ``slots``: calls in flight at most; ``views``: the items of ``compute``'s result (a
    tuple) that its caller only reads before it submits again, handed out as views of
    their slot instead of copies (the call ``slots`` later rewrites them). Starting takes
    the new interpreter's imports and the model's load (under a second): ``ready`` says
    when it is up; a batch submitted before waits for it."""

    def __init__(self, block, max_samples: int, result_bytes: int, slots: int,
                 overrides: dict | None = None, views: tuple = ()):
        self.block, self.max_samples, self.views = block, max_samples, views
        self._inputs = [Slot(max_samples * 8) for _ in range(slots)]
        self._outputs = [Slot(result_bytes) for _ in range(slots)]
        # a fresh interpreter on a socket pair, not multiprocessing's spawn: that would
        # import the host's __main__ again (a script without a main guard runs twice); the
        # slots go to it as open files, so it needs no names (nor a resource tracker). In
        # a session of its own, deaf to SIGINT and SIGTERM: a terminal's Ctrl-C (sent to
        # the whole foreground group) or a service manager's stop (SIGTERM to every
        # process of the service) reaches the graph, which drains through it and then
        # closes it; it ends when its socket does (the graph gone however it went)
        mine, theirs = socket.socketpair()
        slots_fds = [m.fd for m in self._inputs + self._outputs]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "import signal, sys; [signal.signal(s, signal.SIG_IGN) for s "
             f"in (signal.SIGINT, signal.SIGTERM)]; {LEAN}; from cvstream.blocks.process_worker "
             f"import serve; serve({theirs.fileno()})"], pass_fds=(theirs.fileno(), *slots_fds),
            env={**BLAS_ENV, **os.environ, **MALLOC_ENV}, start_new_session=True)
        theirs.close()
        self._conn = Connection(os.dup(mine.fileno()))
        self._socket = mine   # (the same socket: the shared blocks' files go through it)
        self._blocks: set[int] = set()   # the shared blocks the process has mapped
        self._sent = self._received = 0
        self._answers: dict[int, tuple] = {}
        self._started = False
        try:
            self._conn.send((type(block), dict(block.params, **(overrides or {})),
                             [(m.fd, m.size) for m in self._inputs],
                             [(m.fd, m.size) for m in self._outputs]))
        except BaseException:
            self.close()
            raise

    def ready(self, wait: float = 0.0) -> bool:
        """Whether the process has started (waiting up to ``wait`` seconds for it); a start
        that failed raises CvstreamError."""
        if not self._started and self._conn.poll(wait):
            self._check_started()
        return self._started

    def _check_started(self) -> None:
        answer = self._recv()
        if answer[0] == "error":
            raise CvstreamError(f"its worker process could not start: {answer[1]}")
        self._started = True

    def submit(self, x: np.ndarray, track_psds: bool) -> "Call":
        """Compute ``x`` (at most ``max_samples`` complex64 samples) there; the result of
        the call ``slots`` before this one must have been taken. The call's ``samples``
        are x itself where it lies in a shared block (``cvstream.shared``: the process
        reads it there; the call holds it, so the block is not reused before the result
        is taken), else x as copied into its slot, where they stay until the call
        ``slots`` later rewrites it (x itself may be a view of a buffer its caller
        reuses)."""
        slot = self._sent % len(self._inputs)
        where = shared.locate(x)
        try:
            if where is None:
                samples = np.ndarray(x.shape, np.complex64, self._inputs[slot].buf)
                samples[...] = x
            else:
                samples = x
                self._map(where[0])
                where = (where[0].number, where[1])
            self._conn.send((slot, len(x), track_psds, where))
        except OSError:
            raise self._ended() from None
        self._sent += 1
        return Call(self, self._sent - 1, slot, (samples, track_psds))

    def _map(self, block: shared.Block) -> None:
        """Send the process the shared ``block``'s file, the first time a call names it."""
        if block.number not in self._blocks:
            self._conn.send(("map", block.number, block.size))
            socket.send_fds(self._socket, [b"\0"], [block.fd])
            self._blocks.add(block.number)

    def _recv(self) -> tuple:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._ended() from None

    def _ended(self) -> CvstreamError:
        try:
            code = self._proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = "none yet"
        return CvstreamError(f"its worker process ended (exit code {code})")

    def _poll(self, wait: bool) -> None:
        if not self._started:
            if not (wait or self._conn.poll()):
                return
            self._check_started()
        while self._received < self._sent and (wait or self._conn.poll()):
            self._answers[self._received] = self._recv()
            self._received += 1
            wait = False

    def done(self, index: int) -> bool:
        self._poll(False)
        return index < self._received

    def result(self, index: int, slot: int, args: tuple):
        while index >= self._received:
            self._poll(True)
        answer = self._answers.pop(index)
        if answer[0] == "error":
            raise CvstreamError(f"its worker process failed: {answer[1]}")
        if answer[0] == "too_big":   # outgrew its slot: computed here instead
            return self.block.compute(*args)
        return unpack(answer[1], self._outputs[slot].buf, self.views)

    def close(self) -> None:
        """Stop the process (it finishes the batch in hand; one still starting is killed)
        and free the slots."""
        if self._proc.poll() is None and not self._started:
            self._proc.kill()
            self._proc.wait()
        if self._proc.poll() is None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            try:
                self._proc.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._conn.close()
        self._socket.close()
        for slot in self._inputs + self._outputs:
            slot.close()
        self._inputs = self._outputs = []


class Slot:
    """``size`` bytes of memory that a child process can map too: an anonymous file
    (Linux's memfd), freed when the last process that maps it lets go, however it ends."""

    def __init__(self, size: int):
        self.size = size
        self.fd, self._map = shared.anonymous_file(size, "cvstream-worker-slot")
        self.buf = memoryview(self._map)

    def close(self) -> None:
        """Let it go here: unmapped when the last array that views it goes (numpy's arrays
        hold the map itself, not an export of it: closing the map under them would leave
        them pointing at memory no longer there)."""
        os.close(self.fd)
        try:
            self.buf.release()
        except BufferError:
            pass
        self.buf = self._map = None


class Call:
    """One submitted batch: ``done()`` and ``result()`` as a concurrent.futures.Future;
    ``samples``: its samples in their slot."""

    def __init__(self, worker: ProcessWorker, index: int, slot: int, args: tuple):
        self._worker, self._index, self._slot, self._args = worker, index, slot, args
        self.samples = args[0]

    def done(self) -> bool:
        return self._worker.done(self._index)

    def result(self):
        return self._worker.result(self._index, self._slot, self._args)


def serve(fd: int) -> None:
    """The worker process, on its end of the socket pair: the block's class and
    parameters and the slots ((open file, size) each) first; the block started, then each
    (slot, samples, track_psds, where) request answered with ("ok", layout), ("too_big",)
    or ("error", text), until None or the parent's end closes (also while it computes: the
    answer finds no one); then the block stopped, it exits at once. ``where``: None (the
    samples are in the slot's input) or the shared block and offset that hold them, whose
    file a ("map", block, size) message brought before (the file itself follows it on the
    socket)."""
    conn = Connection(fd)
    sock = socket.socket(fileno=os.dup(fd))
    blocks: dict[int, memoryview] = {}   # the shared blocks mapped here
    block_class, params, inputs, outputs = conn.recv()
    try:
        block = block_class(**params)
        block.start()
        ins, outs = _attach(inputs), _attach(outputs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        if request[0] == "map":
            _, number, size = request
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            blocks[number] = memoryview(mmap.mmap(fds[0], size))
            os.close(fds[0])
            continue
        slot, n, track_psds, where = request
        try:   # (not rewritten till answered)
            x = np.ndarray((n,), np.complex64, ins[slot]) if where is None else \
                np.ndarray((n,), np.complex64, blocks[where[0]], where[1])
            arena = Arena(outs[slot])   # its large results straight into the slot
            layout = pack(block.compute(x, track_psds, arena.empty), outs[slot], arena.used)
            answer = ("ok", layout) if layout is not None else ("too_big",)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            where = traceback.extract_tb(exc.__traceback__)[-1]
            answer = ("error", f"{type(exc).__name__}: {exc} ({where.filename}:"
                               f"{where.lineno})")
        try:
            conn.send(answer)
        except OSError:   # the parent is gone (killed mid-batch): nobody to tell
            break
    block.stop()
    # out without the interpreter's teardown (its modules' finalizers: ~50 ms that the
    # graph's end would wait for): nothing is left to write but what print buffered
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _attach(slots: list[tuple[int, int]]) -> list[memoryview]:
    """The parent's shared memory slots, (file, size) each, mapped here."""
    return [memoryview(mmap.mmap(fd, size)) for fd, size in slots]
