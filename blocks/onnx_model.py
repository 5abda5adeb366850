"""onnx_model: run an ONNX model with a cvstream contract over fixed chunks of a stream."""
from __future__ import annotations

import os
import time

import numpy as np

from cvstream import Param, RateBlock, register
from cvstream.chunk import tag_number
from cvstream.contract import Contract, read_contract
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError, ParamError
from cvstream.ports import BoundPort

EPS = 1e-12


def default_threads() -> int:
    """One intra-op thread per model on a 2-core machine (the graph's other blocks and a
    second model use the other core); half the cores, at most 4, on bigger machines."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def load_model(spec: str, task: str | None = None, needs: str | None = None,
               param: str = "model") -> tuple[str, Contract]:
    """(path, contract) of a model parameter (``builtin:NAME`` or a path), as a ParamError
    on ``param`` when it is missing, unreadable, of another task, or lacks a preprocess
    step."""
    from cvstream.models import resolve_model
    try:
        path = resolve_model(spec)
        contract = read_contract(path)
    except CvstreamError as exc:
        raise ParamError(param, str(exc)) from None
    if task is not None and (contract.task != task or
                             (needs is not None and needs not in contract.preprocess)):
        raise ParamError(param, f"'{path}' is a {contract.task} model; this block needs a "
                         f"{task} model")
    return path, contract


def make_session(path: str, threads: int = 0, disabled: tuple = ()):
    """An ONNX Runtime CPU session as model blocks use it: ``threads`` intra-op threads
    (0: default_threads()), sequential, and workers that sleep instead of spinning on a
    core the rest of the graph needs; ``disabled``: graph optimizers it leaves out."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(disabled) or None)
    except Exception as exc:  # noqa: BLE001 - ORT's own exception types
        raise CvstreamError(f"cannot load model '{path}': {exc}") from None


@register("onnx_model")
class OnnxModel(RateBlock):
    """Run an ONNX model over exact chunks of the stream, as its contract says.

    Ports come from the model's contract (names = ONNX tensor names): typically ``inp`` ->
    ``out``. The runtime hands the model exactly ``chunk`` new items plus ``history`` old
    ones; the network returns outputs for the chunk, or for all of those items and the
    runtime keeps the last ``out_items`` (so a causal convolution network needs no
    slicing); complex64 items go to ONNX Runtime as float32 pairs without a copy. Stateful
    models get their state outputs fed back chunk after chunk. ``cvstream validate`` refuses
    upstream dtype, item shape or sample rate that the contract does not accept.
    When behind, stateless models batch up to ``max_batch`` chunks in one call; calls slower
    than ``deadline`` per chunk are counted as ``deadline_misses`` (never dropped).
    Latency: one chunk (chunk / rate) plus the model's run time.
    Example: ``den: {type: onnx_model, model: "builtin:iq_denoiser"}``
    """

    model = Param(str, doc="path to an .onnx file, or builtin:NAME for a shipped model")
    threads = Param(int, default=0, min=0, doc="ONNX Runtime intra-op threads (0: auto)")
    max_batch = Param(int, default=8, min=1, doc="chunks per call when behind (stateless)")
    deadline = Param(float, default=0.0, min=0.0, unit="s",
                     doc="time budget per chunk (0: the chunk's duration at the stream rate)")
    rate = Param(float, default=0.0, min=0.0, unit="Hz",
                 doc="stream rate, when upstream does not declare one")

    def check(self):
        self.path, self.contract = load_model(self.model)
        c = self.contract
        self.decim, self.interp, self.history = c.chunk, c.out_items, c.history
        self.max_chunks = 1 if c.states else self.max_batch
        self._stream_rate = self.rate or c.rate_hz
        self._session = None

    stateless = True

    def replica_problem(self):
        if self.contract.states:
            return f"model '{self.contract.name}' carries state from one chunk to the next"
        return None

    def ports(self):
        c = self.contract
        return ([BoundPort(s.name, "in", "stream", s.dtype, tuple(s.item_shape),
                           doc=f"{c.name} input") for s in c.inputs]
                + [BoundPort(s.name, "out", "stream", s.dtype, tuple(s.item_shape),
                             doc=f"{c.name} output") for s in c.outputs])

    def output_types(self, in_types):
        c = self.contract
        for spec in c.inputs:
            t = in_types.get(spec.name)
            if t is None or t.rate is None:
                continue
            self._check_rate(t.rate, f"upstream of '{spec.name}' runs at")
            self._stream_rate = t.rate
        out_rate = self._stream_rate * c.out_items / c.chunk if self._stream_rate else None
        return {s.name: PortType(s.dtype, tuple(s.item_shape), out_rate) for s in c.outputs}

    def _check_rate(self, rate: float, what: str) -> None:
        want = self.contract.rate_hz
        if want and abs(rate - want) > 1e-6 * want:
            raise CvstreamError(f"{what} {rate:g} Hz but model '{self.contract.name}' was "
                                f"trained for {want:g} Hz (resample first)")

    def start(self):
        self._session = make_session(self.path, self.threads)
        c = self.contract
        self._states = {s.input: np.zeros(s.shape, np.float32) for s in c.states}
        self._out_names = [s.name for s in c.outputs] + [s.output for s in c.states]

    def _frames(self, spec, x: np.ndarray, batch: int) -> np.ndarray:
        c = self.contract
        span = c.history + c.chunk
        if batch == 1:
            frames = np.ascontiguousarray(x)[None]
        else:
            win = np.lib.stride_tricks.sliding_window_view(x, span, axis=0)[::c.chunk]
            frames = np.ascontiguousarray(np.moveaxis(win, -1, 1))
        return frames

    def work(self, *inputs):
        if self._session is None:
            self.start()
        c = self.contract
        for tag in self.input_tags:
            if tag.key == "rx_rate":
                rate = tag_number(tag)
                if rate is None or rate <= 0:
                    self.count("bad_tag_values")
                    continue
                self._check_rate(rate, "the stream's rx_rate tag says")
                self._stream_rate = rate
        batch = (len(inputs[0]) - c.history) // c.chunk
        feeds, inv = {}, None
        for spec, x in zip(c.inputs, inputs):
            frames = self._frames(spec, x, batch)
            if c.normalization in ("rms", "rms_restore"):
                if inv is None:
                    inv = self._inverse_rms(frames)
                frames = np.multiply(frames, inv.reshape(-1, *([1] * (frames.ndim - 1))))
            if spec.packing == "interleaved":
                frames = frames.view(np.float32).reshape(*frames.shape, 2)
            feeds[spec.name] = frames
        feeds.update(self._states)
        t0 = time.perf_counter()
        results = self._session.run(self._out_names, feeds)
        self._account(time.perf_counter() - t0, batch)
        for state, value in zip(c.states, results[len(c.outputs):]):
            self._states[state.input] = value
        outs = []
        for spec, y in zip(c.outputs, results):
            if y.shape[1] != c.out_items:
                y = self._keep_last(spec.name, y)
            if spec.packing == "interleaved":
                y = np.ascontiguousarray(y).view(np.complex64)[..., 0]
            if c.normalization == "rms_restore":
                y = np.divide(y, inv.reshape(-1, *([1] * (y.ndim - 1))), out=y)
            outs.append(y.reshape(batch * c.out_items, *spec.item_shape)
                        .astype(spec.port_type().np_dtype, copy=False))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _keep_last(self, name: str, y: np.ndarray) -> np.ndarray:
        """The history rule: a network may return outputs for all its history + chunk
        input items; the chunk's are the last ``out_items``."""
        c = self.contract
        full = (c.history + c.chunk) * c.out_items // c.chunk
        if y.shape[1] != full:
            raise CvstreamError(f"model '{c.name}' returned {y.shape[1]} items on '{name}' "
                                f"for history {c.history} + chunk {c.chunk}; the contract "
                                f"allows {c.out_items} (the chunk's) or {full} (all of them)")
        return y[:, full - c.out_items:]

    @staticmethod
    def _inverse_rms(frames: np.ndarray) -> np.ndarray:
        """1 / RMS of each frame (float32), by BLAS dot products: no temporaries."""
        flat = frames.reshape(len(frames), -1)
        if flat.dtype == np.complex64:
            flat = flat.view(np.float32)
        power = np.array([np.dot(row, row) for row in flat], np.float32)
        n = frames[0].size
        return (1.0 / np.sqrt(power / n + EPS)).astype(np.float32)

    def _account(self, seconds: float, batch: int) -> None:
        if batch > 1:
            self.count("batched_calls")
        budget = self.deadline or (self.contract.chunk / self._stream_rate
                                   if self._stream_rate else 0.0)
        if budget and seconds > budget * batch:
            self.count("deadline_misses", batch)
