"""GNU Radio Companion block files (``.block.yml``) derived from the block declarations.

``cvstream grc --out DIR`` writes one file per registered block; put DIR on
``GRC_BLOCKS_PATH`` (or in ``~/.local/state/gnuradio``'s block path) and the blocks appear in
GRC under [cvstream]; compiled flow graphs build them with ``cvstream.gnuradio.block``.

Port types come from the declarations: a fixed type as is, a ``$param`` reference as that
parameter, a port that takes any type as the block's ``type`` / ``vlen`` parameters (as GNU
Radio's own typed blocks do). An output whose type the block computes (an FFT's length, a
model's tensor shape) gets ``<port>_type`` / ``<port>_vlen`` parameters with the values for
the default parameters; the block checks them when built and names a mismatch.
"""
from __future__ import annotations

import os

import numpy as np
import yaml

from .block import Block
from .dtypes import DTYPES, PortType
from .params import REQUIRED

#: cvstream sample type -> GRC port dtype
GRC_DTYPES = {"complex64": "complex", "float32": "float", "int16": "short", "int8": "byte",
              "uint8": "byte"}
_PARAM_DTYPES = {"int": "int", "float": "real", "complex": "complex", "bool": "bool",
                 "str": "string", "input file": "file_open", "output file": "file_save"}


def block_yaml(cls: type[Block]) -> dict:
    """The GRC description of one block class."""
    params, make_args, checks = [], [], {}
    decls = cls._param_decls
    for key, decl in decls.items():
        params.append(_param(key, decl))
        make_args.append(f"{key}=${{{key}}}")  # GRC writes each value as Python code
    inputs, outputs = [], []
    any_type = any_shape = False
    stream_ports = [p.bind() for p in cls._port_decls]
    by_name = {p.name: p for p in stream_ports}
    default_types = _default_output_types(cls)
    for port in stream_ports:
        if port.is_message:
            entry = {"domain": "message", "id": port.name}
            if port.optional:
                entry["optional"] = True
            (inputs if port.direction == "in" else outputs).append(entry)
            continue
        src = by_name.get(port.like) if port.like else None
        dtype, vlen = port.dtype, port.shape
        if src is not None:
            dtype = dtype if dtype is not None else src.dtype
            vlen = vlen if vlen is not None else src.shape
        entry = {"domain": "stream", "label": port.name}
        if dtype is None and (port.direction == "in" or src is not None):
            any_type, entry["dtype"] = True, "${ type.grc }"
        elif dtype is None:
            entry["dtype"] = f"${{ {port.name}_type.grc }}"
            checks.setdefault(port.name, [None, None])[0] = f"{port.name}_type"
        elif dtype.startswith("$"):
            entry["dtype"] = f"${{ {dtype[1:]}.grc }}"
        else:
            entry["dtype"] = GRC_DTYPES[dtype]
        if vlen is None and (port.direction == "in" or src is not None):
            any_shape, entry["vlen"] = True, "${ vlen }"
        elif vlen is None:
            entry["vlen"] = f"${{ {port.name}_vlen }}"
            checks.setdefault(port.name, [None, None])[1] = f"{port.name}_vlen"
        elif isinstance(vlen, str):
            entry["vlen"] = f"${{ {vlen[1:]} }}"
        elif vlen:
            entry["vlen"] = int(np.prod(vlen))
        (inputs if port.direction == "in" else outputs).append(entry)
    if any_type:
        params.append(_dtype_enum("type", "Item type", "complex64"))
    if any_shape:
        params.append({"id": "vlen", "label": "Vector length", "dtype": "int",
                       "default": 1, "hide": "part"})
    for port, (tkey, vkey) in checks.items():
        known = default_types.get(port)
        if tkey:
            params.append(_dtype_enum(tkey, f"{port} type (computed; must match)",
                                      known.dtype if known else "complex64"))
        if vkey:
            size = int(np.prod(known.shape)) if known else 1
            params.append({"id": vkey, "label": f"{port} vector length (computed; must match)",
                           "dtype": "int", "default": size, "hide": "part"})
    if any_type or any_shape:
        make_args.append("in_types=(" + ("${type}" if any_type else "'complex64'") + ", "
                         + ("${vlen}" if any_shape else "()") + ")")
    if checks:
        parts = []
        for port, (tkey, vkey) in checks.items():
            parts.append(f"'{port}': (" + (f"${{{tkey}}}" if tkey else "None") + ", "
                         + (f"${{{vkey}}}" if vkey else "None") + ")")
        make_args.append("expect={" + ", ".join(parts) + "}")
    doc = (cls.__doc__ or "").strip()
    return {
        "id": f"cvstream_{cls.type_name}",
        "label": f"cvstream {cls.type_name}",
        "category": "[cvstream]",
        "flags": ["python"],
        "parameters": params,
        "inputs": inputs,
        "outputs": outputs,
        "templates": {
            "imports": "import cvstream.gnuradio",
            "make": f"cvstream.gnuradio.block({cls.type_name!r}"
                    + "".join(f", {a}" for a in make_args) + ")",
        },
        "documentation": doc,
        "file_format": 1,
    }


def _param(key: str, decl) -> dict:
    entry = {"id": key, "label": key + (f" ({decl.unit})" if decl.unit else "")}
    kind = decl.kind.name
    if kind == "dtype":
        return _dtype_enum(key, entry["label"], decl.default)
    if decl.choices and all(c in GRC_DTYPES for c in decl.choices):
        return _dtype_enum(key, entry["label"], decl.default, list(decl.choices))
    if decl.choices:  # enum options are Python code: strings quoted
        entry.update(dtype="enum", options=[repr(c) for c in decl.choices],
                     option_labels=[str(c) for c in decl.choices])
        if decl.default is not REQUIRED:
            entry["default"] = repr(decl.default)
        return entry
    entry["dtype"] = _PARAM_DTYPES.get(kind, "raw")
    if decl.default is not REQUIRED:
        value = decl.default
        if isinstance(value, complex) and not value.imag:
            value = value.real
        entry["default"] = value if isinstance(value, str) else repr(value)
    return entry


def _dtype_enum(key: str, label: str, default, names: list[str] | None = None) -> dict:
    """A sample-type choice: the value is the cvstream name, ``.grc`` GRC's port dtype."""
    names = names or list(GRC_DTYPES)
    entry = {"id": key, "label": label, "dtype": "enum", "options": [repr(n) for n in names],
             "option_labels": names,
             "option_attributes": {"grc": [GRC_DTYPES[n] for n in names]}, "hide": "part"}
    if default not in (None, REQUIRED):
        entry["default"] = repr(default)
    return entry


def _default_output_types(cls: type[Block]) -> dict[str, PortType]:
    """Output types for the default parameters and complex64 inputs, when they can be made
    without a file or model at hand; else empty."""
    try:
        block = cls()
        ins = {p.name: PortType(p.dtype if p.dtype and not p.dtype.startswith("$")
                                else "complex64", p.shape if isinstance(p.shape, tuple) else ())
               for p in block.inputs() if not p.is_message}
        return block.output_types(ins)
    except Exception:  # noqa: BLE001 - a block that needs a file or model: no defaults
        return {}


def write_all(out_dir: str, types: dict[str, type[Block]]) -> list[str]:
    """Write ``cvstream_<type>.block.yml`` for every block type; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for cls in types.values():
        path = os.path.join(out_dir, f"cvstream_{cls.type_name}.block.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(block_yaml(cls), f, sort_keys=False, width=100)
        paths.append(path)
    return paths


assert set(GRC_DTYPES) == set(DTYPES)
