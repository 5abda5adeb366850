"""Export a complex-valued torch network to ONNX with its cvstream contract.

``export_model`` folds batch norms into 2x2 affines, exports (opset >= 17), runs
``onnx.checker``, embeds the contract in the metadata and checks ONNX Runtime against torch
on fresh random input (max abs error <= ``tol``). ``quantize_int8`` makes a static int8 QDQ
copy calibrated on data the caller provides.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from cvstream.contract import METADATA_KEY, Contract
from cvstream.errors import CvstreamError

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

    def __str__(self) -> str:
        return (f"{self.path}: {self.real_params} real parameters, {self.bytes / 1e3:.1f} kB, "
                f"ONNX Runtime vs torch max |error| {self.max_abs_error:.2e}, "
                f"exported in {self.seconds:.1f} s")


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
                 constant_folding: bool = True) -> ExportReport:
    """Export ``model`` (forward(*stream_inputs, *states) -> (*outputs, *next_states)).

    ``constant_folding=False`` keeps subgraphs that depend only on weights (e.g. operator
    tables computed from a geometry) as nodes: the file stays small and ONNX Runtime folds
    them when it loads the model."""
    import onnx
    import onnxruntime as ort
    if opset < 17:
        raise ExportError("opset must be >= 17")
    if isinstance(contract, dict):
        contract = Contract(**contract)
    t0 = time.perf_counter()
    folded = fold_batchnorms(model)
    stateful = bool(contract.states)
    args = [torch.from_numpy(a) for a in example_inputs(contract, 1 if stateful else 2, seed)]
    in_names = [s.name for s in contract.inputs] + [s.input for s in contract.states]
    out_names = [s.name for s in contract.outputs] + [s.output for s in contract.states]
    dynamic = {} if stateful else {n: {0: "batch"} for n in
                                    [s.name for s in contract.inputs + contract.outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(folded, tuple(args), path, dynamo=False, opset_version=opset,
                          input_names=in_names, output_names=out_names,
                          dynamic_axes=dynamic, do_constant_folding=constant_folding)
    proto = onnx.load(path)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected {path}: {exc}") from None
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    proto.producer_name = "cvstream"
    onnx.save(proto, path)
    # ONNX Runtime against torch, on inputs the export never saw
    test = example_inputs(contract, 1 if stateful else 3, seed + 1)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip(in_names, test)))
    with torch.no_grad():
        want = folded(*[torch.from_numpy(a) for a in test])
    want = want if isinstance(want, (tuple, list)) else (want,)
    err = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if not err <= tol:
        raise ExportError(f"ONNX Runtime differs from torch by {err:.2e} (> {tol:g})")
    real_params = sum(p.numel() for p in model.parameters())
    import os
    return ExportReport(path, err, real_params, os.path.getsize(path),
                        time.perf_counter() - t0)


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
