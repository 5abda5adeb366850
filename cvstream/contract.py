"""The model contract: what an ONNX model promises the runtime, stored in its metadata
(key ``cvstream.contract``, JSON). Written by ``cvstream models export``; read by the
``onnx_model`` block to declare its ports and refuse mismatched graphs before data flows.

ONNX tensors are laid out ``(batch, items, *item_shape)`` for stream tensors; with
``packing: interleaved`` a complex64 item is carried as float32 pairs (a trailing axis of 2,
exactly a complex64 array viewed as float32). Inputs see ``history + chunk`` items per call;
outputs give ``out_items`` items per chunk. State tensors are fed back chunk after chunk.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .dtypes import PortType, canonical_dtype
from .errors import CvstreamError

METADATA_KEY = "cvstream.contract"
CONTRACT_VERSION = 1
#: bytes of one input tensor per call (history + chunk items) at most: a contract asking for
#: more is refused at validation instead of failing to allocate at run time
MAX_CALL_BYTES = 1 << 30


@dataclass
class TensorSpec:
    name: str                      # ONNX tensor name; also the block's port name
    dtype: str = "complex64"       # stream dtype of one item
    item_shape: list[int] = field(default_factory=list)
    packing: str = "interleaved"   # complex items as float32 pairs; "none" for real dtypes

    def port_type(self) -> PortType:
        return PortType(self.dtype, tuple(self.item_shape))

    def onnx_shape(self, items) -> list:
        tail = [2] if self.packing == "interleaved" else []
        return ["batch", items, *self.item_shape, *tail]


@dataclass
class StateSpec:
    input: str                     # ONNX input that receives the state
    output: str                    # ONNX output that returns the next state
    shape: list[int]               # full shape, batch 1 included
    dtype: str = "float32"


@dataclass
class Contract:
    task: str
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    chunk: int                     # new items per call
    history: int = 0               # old items in front of them
    out_items: int = 0             # output items per chunk (0: same as chunk)
    delay: int = 0                 # output items lag the input by this many items
    sample_rate: float | str = "normalized"
    version: str = "1"
    #: "none"; "rms": inputs scaled to unit RMS per call (by the first input's RMS);
    #: "rms_restore": the same, and outputs multiplied back by that RMS;
    #: "noise_floor": spectra scaled so noise cells have unit power (spectrum models)
    normalization: str = "none"
    class_names: list[str] = field(default_factory=list)
    #: what the block does before the model, e.g. {"stft": {"fft": 128, "hop": 128,
    #: "window": "hann", "frames": 32}} for spectrum models (normalized frequency)
    preprocess: dict[str, Any] = field(default_factory=dict)
    #: what the block does with the model's outputs, e.g. {"temperature": 1.4} for a
    #: classifier (logits divided by it before the softmax: calibrated probabilities)
    postprocess: dict[str, Any] = field(default_factory=dict)
    states: list[StateSpec] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    quantization: str = "fp32"
    contract_version: int = CONTRACT_VERSION

    def __post_init__(self):
        self.inputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.inputs]
        self.outputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t)
                        for t in self.outputs]
        self.states = [s if isinstance(s, StateSpec) else StateSpec(**s) for s in self.states]
        if not self.out_items:
            self.out_items = self.chunk
        self.validate()

    def validate(self) -> None:
        def bad(msg):
            raise CvstreamError(f"model contract: {msg}")

        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)
        for key in ("chunk", "history", "out_items", "delay"):
            if not whole(getattr(self, key)):
                bad(f"{key} must be a whole number, got {getattr(self, key)!r:.40}")
        for spec in self.inputs + self.outputs:
            if not isinstance(spec.name, str):
                bad(f"tensor name {spec.name!r:.40} must be text")
            if not isinstance(spec.item_shape, list) or not all(
                    whole(d) and d > 0 for d in spec.item_shape):
                bad(f"'{spec.name}': item_shape must be a list of positive whole numbers")
        for state in self.states:
            if not isinstance(state.input, str) or not isinstance(state.output, str):
                bad("state tensor names must be text")
            if not isinstance(state.shape, list) or not all(whole(d) and d > 0
                                                             for d in state.shape):
                bad(f"state '{state.input}': shape must be a list of positive whole numbers")
        if self.chunk < 1 or self.history < 0 or self.out_items < 1:
            bad("chunk and out_items must be >= 1, history >= 0")
        if not self.inputs or not self.outputs:
            bad("needs at least one input and one output")
        for spec in self.inputs + self.outputs:
            try:
                spec.dtype = canonical_dtype(spec.dtype)
            except ValueError as exc:
                bad(f"'{spec.name}': {exc}")
            if spec.packing not in ("interleaved", "none"):
                bad(f"'{spec.name}': packing is 'interleaved' or 'none'")
            if spec.packing == "interleaved" and spec.dtype != "complex64":
                bad(f"'{spec.name}': only complex64 items are interleaved")
            if spec.packing == "none" and spec.dtype == "complex64":
                bad(f"'{spec.name}': complex64 items need packing 'interleaved'")
        if not (self.sample_rate == "normalized" or isinstance(self.sample_rate, (int, float))):
            bad("sample_rate is a number of Hz or 'normalized'")
        if self.normalization not in ("none", "rms", "rms_restore", "noise_floor",
                                      "noise_floor_per_bin"):
            bad("normalization is 'none', 'rms', 'rms_restore', 'noise_floor' or "
                "'noise_floor_per_bin'")
        names = [t.name for t in self.inputs + self.outputs]
        for name in names + [s.input for s in self.states] + [s.output for s in self.states]:
            if not name.isidentifier():
                bad(f"tensor name '{name}' must be an identifier (it names a port)")
        if len(set(names)) != len(names):
            bad("input and output names must be distinct")
        if self.states and self.history:
            bad("a stateful model carries its past in its states; history must be 0")
        for spec in self.inputs:
            size = (self.history + self.chunk) * spec.port_type().item_size
            if size > MAX_CALL_BYTES:
                bad(f"'{spec.name}': {self.history + self.chunk} items a call are {size} "
                    f"bytes (limit {MAX_CALL_BYTES})")

    @property
    def rate_hz(self) -> float | None:
        return None if self.sample_rate == "normalized" else float(self.sample_rate)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Contract":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CvstreamError(f"model contract is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CvstreamError("model contract is not a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise CvstreamError(f"model contract has unknown fields {sorted(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError, AttributeError) as exc:
            raise CvstreamError(f"model contract: {str(exc)[:160]}") from None

    def summary(self) -> str:
        """Human-readable contract, as ``cvstream models info`` prints it."""
        def tensor(t):
            shape = "x".join(map(str, t.item_shape)) or "scalar"
            return f"{t.name}: {t.dtype} items ({shape})"
        rate = (f"{self.sample_rate:g} Hz" if isinstance(self.sample_rate, (int, float))
                else self.sample_rate)
        lines = [f"model     {self.name} v{self.version} ({self.task}, {self.quantization})",
                 f"inputs    {'; '.join(tensor(t) for t in self.inputs)}",
                 f"outputs   {'; '.join(tensor(t) for t in self.outputs)}",
                 f"chunk     {self.chunk} items in (+{self.history} history) -> "
                 f"{self.out_items} out, delay {self.delay} items",
                 f"rate      {rate}",
                 f"normalize {self.normalization}"]
        if self.class_names:
            lines.append(f"classes   {', '.join(self.class_names)}")
        if self.states:
            lines.append("states    " + "; ".join(f"{s.input} -> {s.output} {s.shape}"
                                                 for s in self.states))
        for key, value in self.postprocess.items():
            lines.append(f"post      {key}: {value}")
        if self.description:
            lines.append(f"about     {self.description}")
        for key, value in self.evaluation.items():
            lines.append(f"eval      {key}: {value}")
        return "\n".join(lines)


def read_contract(path: str) -> Contract:
    """The contract of an ONNX file, with one-line errors for missing, corrupt or foreign files."""
    import os

    import onnxruntime as ort
    if not os.path.isfile(path):
        raise CvstreamError(f"model '{path}' does not exist")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own InvalidProtobuf, Fail, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CvstreamError(f"model '{path}' is not a loadable ONNX file: {first[:160]}"
                            ) from None
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise CvstreamError(f"model '{path}' has no cvstream contract in its metadata "
                            "(export it with `cvstream models export`)")
    try:
        contract = Contract.from_json(meta[METADATA_KEY])
        check_tensors(contract, session)
    except CvstreamError as exc:
        raise CvstreamError(f"model '{path}': {exc}") from None
    return contract


def check_tensors(contract: Contract, session) -> None:
    """Refuse a contract whose tensors are not the ONNX graph's: names, and every fixed
    dimension (a named dimension, such as the batch, matches anything)."""
    graph = {t.name: t.shape for t in session.get_inputs() + session.get_outputs()}
    c = contract
    want = [(s.name, s.onnx_shape(c.history + c.chunk)) for s in c.inputs]
    want += [(s.name, s.onnx_shape(c.out_items)) for s in c.outputs]
    want += [(s.input, s.shape) for s in c.states] + [(s.output, s.shape) for s in c.states]
    for name, shape in want:
        if name not in graph:
            raise CvstreamError(f"the contract names tensor '{name}', which the ONNX graph "
                                f"lacks (it has {', '.join(graph)})")
        have = graph[name]
        fixed = [(h, w) for h, w in zip(have, shape) if isinstance(h, int) and isinstance(w, int)]
        if len(have) != len(shape) or any(h != w for h, w in fixed):
            shown = [d if isinstance(d, int) else "batch" for d in have]
            raise CvstreamError(f"tensor '{name}' is {shown} in the ONNX graph; the contract "
                                f"says {shape}")
