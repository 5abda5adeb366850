"""Export a complex-valued torch network to ONNX with its cvstream contract.

``export_model`` folds batch norms into 2x2 affines, exports (opset >= 17), runs a
stateless model's 1-D convolutions as 2-D ones (``graph_passes.conv1d_as_2d``: ONNX
Runtime's faster kernels; a streaming model's stay 1-D, which keeps its chunk-by-chunk
output bit for bit equal to a whole-signal run), runs ``onnx.checker``, embeds the contract
in the metadata and checks ONNX Runtime against torch on fresh random input (max abs error
<= ``tol``). ``quantize_int8`` makes a static int8 QDQ copy calibrated on data the caller
provides.
"""
from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from cvstream.contract import METADATA_KEY, Contract
from cvstream.errors import CvstreamError

from .graph_passes import conv1d_as_2d
from .nn.norm import ComplexBatchNorm


class ExportError(CvstreamError):
    """The exported model is invalid or disagrees with torch."""


@dataclass
class ExportReport:
    path: str
    max_abs_error: float
    real_params: int
    bytes: int
    seconds: float
    rel_error: float = 0.0     # ||ORT - torch|| / ||torch|| over all outputs

    def __str__(self) -> str:
        return (f"{self.path}: {self.real_params} real parameters, {self.bytes / 1e3:.1f} kB, "
                f"ONNX Runtime vs torch max |error| {self.max_abs_error:.2e} (relative "
                f"{self.rel_error:.1e}), exported in {self.seconds:.1f} s")


def fold_batchnorms(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (eval mode) with every ComplexBatchNorm replaced by its 2x2 affine."""
    model = copy.deepcopy(model).eval()
    for name, child in list(model.named_children()):
        if isinstance(child, ComplexBatchNorm):
            setattr(model, name, child.fold())
        else:
            setattr(model, name, fold_batchnorms(child))
    return model


def example_inputs(contract: Contract, batch: int, seed: int) -> list[np.ndarray]:
    """Random stream inputs and zero states shaped as the contract says."""
    rng = np.random.default_rng(seed)
    items = contract.history + contract.chunk
    arrays = []
    for spec in contract.inputs:
        shape = [batch, items, *spec.item_shape] + ([2] if spec.packing == "interleaved" else [])
        arrays.append(rng.standard_normal(shape).astype(np.float32))
    for state in contract.states:
        arrays.append(np.zeros(state.shape, np.float32))
    return arrays


def export_model(model: torch.nn.Module, contract: Contract | dict, path: str,
                 opset: int = 17, tol: float = 1e-4, seed: int = 0,
                 constant_folding: bool = True, test_inputs=None,
                 settings: dict[str, np.ndarray] | None = None,
                 rel_tol: float | None = None) -> ExportReport:
    """Export ``model`` (forward(*stream_inputs, *states) -> (*outputs, *next_states)).

    ``constant_folding=False`` keeps subgraphs that depend only on weights (e.g. operator
    tables computed from a geometry) as nodes: the file stays small and ONNX Runtime folds
    them when it loads the model. ``test_inputs`` (arrays, one per stream input and state)
    replace the random ones ONNX Runtime and torch are compared on: a model whose output
    depends on the input's structure (a support threshold) is checked on data it serves.
    ``settings`` ({name: default}) are graph inputs after the stream inputs and states that
    a caller may feed or leave out (an iteration count): each default is an initializer of
    the input's name, which ONNX Runtime lets a fed value override; forward takes them as
    optional trailing arguments. ``rel_tol`` checks the relative L2 error of each item
    (the outputs' first axis) instead of the largest error (``tol``): for outputs behind a
    data-dependent threshold, where float32 rounding can move a voxel or two across it in
    one item. The items' median must stay within ``rel_tol`` and each within
    FLIP_ALLOWANCE times that (a wrong export is off on every item, a flip on one).

    ``path`` is replaced only by a model that passed both checks: the export is written
    beside it first; one that ONNX Runtime and torch disagree on is kept as
    ``<stem>.rejected.onnx`` (the training's weights are in it), never over a shipped
    model."""
    import onnx
    import onnxruntime as ort
    if opset < 17:
        raise ExportError("opset must be >= 17")
    if isinstance(contract, dict):
        contract = Contract(**contract)
    t0 = time.perf_counter()
    folded = fold_batchnorms(model)
    stateful = bool(contract.states)
    staged = f"{path}.unchecked"
    args = [torch.from_numpy(a) for a in example_inputs(contract, 1 if stateful else 2, seed)]
    in_names = [s.name for s in contract.inputs] + [s.input for s in contract.states]
    settings = settings or {}
    args += [torch.from_numpy(np.asarray(v)) for v in settings.values()]
    out_names = [s.name for s in contract.outputs] + [s.output for s in contract.states]
    dynamic = {} if stateful else {n: {0: "batch"} for n in
                                    [s.name for s in contract.inputs + contract.outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(folded, tuple(args), staged, dynamo=False, opset_version=opset,
                          input_names=in_names + list(settings), output_names=out_names,
                          dynamic_axes=dynamic, do_constant_folding=constant_folding)
    proto = onnx.load(staged)
    if not (contract.history or stateful):   # items on their own: any kernel's rounding
        conv1d_as_2d(proto)
    for name, value in settings.items():
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        os.remove(staged)
        raise ExportError(f"onnx.checker rejected the export for {path}: {exc}") from None
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    proto.producer_name = "cvstream"
    onnx.save(proto, staged)
    # ONNX Runtime against torch, on inputs the export never saw
    test = test_inputs or example_inputs(contract, 1 if stateful else 3, seed + 1)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3   # a setting's default initializer is meant to be overridable
    session = ort.InferenceSession(staged, opts, providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip(in_names, test)))
    with torch.no_grad():
        want = folded(*[torch.from_numpy(a) for a in test])
    want = want if isinstance(want, (tuple, list)) else (want,)
    err = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    items = np.concatenate([item_relative_errors(g, w.numpy()) for g, w in zip(got, want)])
    rel = float(np.median(items))
    if rel_tol is None and not err <= tol:
        reject(staged, path, f"ONNX Runtime differs from torch by {err:.2e} (> {tol:g})")
    if rel_tol is not None and not (rel <= rel_tol and items.max() <= FLIP_ALLOWANCE * rel_tol):
        reject(staged, path, f"ONNX Runtime differs from torch by {rel:.2e} relative (median "
                             f"of its items; > {rel_tol:g}), {items.max():.2e} at most (> "
                             f"{FLIP_ALLOWANCE * rel_tol:g})")
    os.replace(staged, path)
    real_params = sum(p.numel() for p in model.parameters())
    return ExportReport(path, err, real_params, os.path.getsize(path),
                        time.perf_counter() - t0, rel)


#: ``export_model``'s ``rel_tol``: an item may differ this many times more (a voxel moved
#: across a threshold by float32 rounding), so long as the items' median is within it
FLIP_ALLOWANCE = 5.0


def item_relative_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The relative L2 error of each item (first axis) of ``got`` against ``want``."""
    g, w = np.atleast_1d(got), np.atleast_1d(want)
    g, w = g.reshape(len(g), -1), w.reshape(len(w), -1)
    return np.linalg.norm(g - w, axis=1) / np.maximum(np.linalg.norm(w, axis=1), 1e-30)


def reject(staged: str, path: str, why: str) -> None:
    """Keep a failed export as ``<stem>.rejected.onnx`` beside ``path`` and raise."""
    rejected = f"{os.path.splitext(path)[0]}.rejected.onnx"
    os.replace(staged, rejected)
    raise ExportError(f"{why}; {path} left as it was, the export kept as {rejected}")


def quantize_int8(src: str, dst: str, calibration: Iterable[list[np.ndarray]]) -> str:
    """Static int8 quantization (QDQ, per-channel weights) calibrated on ``calibration``:
    an iterable of input lists in the contract's input order. Keeps the contract, marked
    ``quantization: int8-qdq``."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    from cvstream.contract import read_contract
    contract = read_contract(src)
    names = [s.name for s in contract.inputs] + [s.input for s in contract.states]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calibration)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else dict(zip(names, batch))

    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    contract.quantization = "int8-qdq"
    rewrite_contract(dst, contract)
    return dst


def rewrite_contract(path: str, contract) -> None:
    """Replace the contract stored in an ONNX file (e.g. to add its evaluation), weights
    untouched."""
    import onnx
    proto = onnx.load(path)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = contract.to_json()
            break
    else:
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.save(proto, path)


@dataclass
class StreamCheck:
    """Chunked (as ``onnx_model`` runs it) against whole-signal inference."""
    max_abs_diff: float | None   # None: not checked (see ``note``)
    lookback: int | None = None  # items the network looks back, when measured
    note: str = ""

    def __str__(self) -> str:
        if self.max_abs_diff is None:
            return f"streaming not checked: {self.note}"
        same = " (bit for bit)" if self.max_abs_diff == 0 else ""
        return (f"streaming (chunk by chunk in onnx_model) vs whole signal ({self.note}): "
                f"max |diff| {self.max_abs_diff:.2e}{same}")


def check_streaming(model: torch.nn.Module, path: str, tol: float = 1e-4, chunks: int = 6,
                    seed: int = 0) -> StreamCheck:
    """Run the exported model chunk by chunk through the ``onnx_model`` block and the network
    once over the whole signal (behind ``history`` zeros, as a stream starts) on unit-power
    random input: exported again with a free time axis and run by ONNX Runtime (the same
    kernels, so a model that streams right agrees bit for bit), or in torch when it has a
    fixed length. Raise ExportError when they differ by more than ``tol``, naming how far the
    network looks back against the contract's ``history``."""
    from cvstream.blocks.onnx_model import OnnxModel
    from cvstream.contract import read_contract
    c = read_contract(path)
    if c.states or c.normalization != "none" or len(c.inputs) != 1:
        return StreamCheck(None, note="stateful, normalized or multi-input models are "
                           "checked by their own tests")
    folded = fold_batchnorms(model)
    spec = c.inputs[0]
    x = _unit_noise(np.random.default_rng(seed), chunks * c.chunk, spec)
    block = OnnxModel(model=path, max_batch=1)
    parts = [p for p in (block.process(x), block.flush()) if p is not None]
    block.stop()
    streamed = np.concatenate([p if not isinstance(p, tuple) else p[0] for p in parts])
    padded = np.concatenate([np.zeros((c.history, *x.shape[1:]), x.dtype), x])
    whole, how = _whole(folded, padded, c, onnx=True), "ONNX Runtime"
    if whole is None:
        whole, how = _whole(folded, padded, c), "torch"
    if whole is None:
        return StreamCheck(None, note="the network does not run on a whole signal "
                           "(fixed input length)")
    n = min(len(streamed), len(whole))
    diff = float(np.abs(streamed[:n] - whole[len(whole) - len(streamed):][:n]).max())
    if diff <= tol:
        return StreamCheck(diff, note=how)
    reach, ahead = _reach(folded, c, spec)
    need = f"the network looks back {reach} items" if reach is not None else \
        "the network looks back further than the test signal"
    if ahead:
        raise ExportError(f"streaming differs from whole-signal inference (max |diff| "
                          f"{diff:.2g} > {tol:g}): the network looks {ahead} items ahead, "
                          "which no history gives it; make it causal (causal=True "
                          "convolutions) and declare its delay, or --force")
    raise ExportError(f"streaming differs from whole-signal inference (max |diff| {diff:.2g} "
                      f"> {tol:g}, after chunk boundaries): {need}, the contract's history is "
                      f"{c.history}; set history: {reach if reach is not None else 'more'} "
                      "(the network then gets history + chunk items; it may return outputs "
                      "for all of them and the runtime keeps the chunk's), or --force")


def _unit_noise(rng, n: int, spec) -> np.ndarray:
    shape = (n, *spec.item_shape)
    if spec.dtype == "complex64":
        return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
                / np.sqrt(2)).astype(np.complex64)
    return rng.standard_normal(shape).astype(spec.port_type().np_dtype)


def _whole(net, x: np.ndarray, c, onnx: bool = False) -> np.ndarray | None:
    """The network's outputs over all of ``x`` (first output) as stream items, run by ONNX
    Runtime (exported with a free time axis) or by torch; None when it cannot take the
    length or returns a fixed number of items (not a sequence model)."""
    spec, out = c.inputs[0], c.outputs[0]
    arr = x.view(np.float32).reshape(*x.shape, 2) if spec.packing == "interleaved" else x
    arr = np.ascontiguousarray(arr)[None]
    y = _run_onnx(net, arr, spec.name, out.name) if onnx else _run_torch(net, arr)
    if y is None:
        return None
    if out.packing == "interleaved":
        y = np.ascontiguousarray(y).view(np.complex64)[..., 0]
    if len(y) * c.chunk != len(x) * c.out_items:
        return None
    return y


def _run_torch(net, arr: np.ndarray) -> np.ndarray | None:
    try:
        with torch.no_grad():
            y = net(torch.from_numpy(arr))
    except RuntimeError:
        return None
    return (y[0] if isinstance(y, (tuple, list)) else y)[0].numpy()


def _run_onnx(net, arr: np.ndarray, in_name: str, out_name: str) -> np.ndarray | None:
    import os
    import tempfile

    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "whole.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (torch.from_numpy(arr),), path, dynamo=False,
                                  opset_version=17, input_names=[in_name],
                                  output_names=[out_name],
                                  dynamic_axes={in_name: {0: "batch", 1: "items"},
                                                out_name: {0: "batch", 1: "items"}})
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            return session.run([out_name], {in_name: arr})[0][0]
        except Exception:  # noqa: BLE001 - a network that cannot take a free length
            return None


def _reach(net, c, spec) -> tuple[int | None, int]:
    """How many items back an input change still moves the output (None: past the test
    signal), and how many items before it the output already moves (look-ahead)."""
    rng = np.random.default_rng(1)
    n = 8 * (c.history + c.chunk)
    x = _unit_noise(rng, n, spec)
    base = _whole(net, x, c)
    x2 = x.copy()
    x2[n // 2] += 10
    moved = np.abs(_whole(net, x2, c) - base).reshape(len(base), -1).max(axis=1) > 1e-6
    scale = c.out_items / c.chunk
    hit = np.nonzero(moved)[0]
    if not len(hit):
        return None, 0
    ahead = max(0, int(np.ceil(n // 2 - hit[0] / scale)))
    if hit[-1] >= len(base) - 1:
        return None, ahead
    return int(np.ceil(hit[-1] / scale - n // 2)), ahead
