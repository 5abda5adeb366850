"""Documentation and YAML schema derived from block declarations."""
from __future__ import annotations

import inspect

from .block import Block
from .params import REQUIRED


def summary(cls: type[Block]) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def _default_text(decl) -> str:
    if decl.default is REQUIRED:
        return "required"
    return repr(decl.default)


def render(cls: type[Block]) -> str:
    """The page ``cvstream blocks TYPE`` prints."""
    where = ("cvstream.blocks" if cls.__module__.startswith("cvstream.blocks")
             else cls.__module__)
    lines = [f"{cls.type_name}  ({cls.kind} block; in Python: from {where} import "
             f"{cls.__name__})", ""]
    doc = inspect.getdoc(cls) or "(no description)"
    lines += [doc, ""]
    ports = cls._port_decls
    if ports:
        lines.append("Ports:")
        for p in ports:
            b = p.bind()
            extra = " (optional)" if b.optional else ""
            lines.append(f"  {b.direction:<3} {b.name:<12} {b.describe():<24}{extra} {b.doc}")
        lines.append("")
    if cls._param_decls:
        lines.append("Parameters:")
        for name, d in cls._param_decls.items():
            unit = f" [{d.unit}]" if d.unit else ""
            choices = f" one of {', '.join(map(str, d.choices))}." if d.choices else ""
            lines.append(f"  {name:<14} {d.kind.name:<10} {_default_text(d):<14} "
                         f"{d.doc}{unit}{choices}")
    return "\n".join(lines).rstrip() + "\n"


def block_schema(cls: type[Block]) -> dict:
    props = {"type": {"const": cls.type_name},
             "fuse": {"type": "boolean", "description": "false: never run fused with its "
                      "neighbours (debugging)"},
             "fragment": {"type": "string", "pattern": r"^[A-Za-z_]\w*$",
                          "description": "the part of the graph it runs in with --ray"}}
    if cls.stateless or cls.compute is not Block.compute:
        props["replicas"] = {"type": "integer", "minimum": 1, "maximum": 64,
                             "description": "copies sharing the stream (stateless block)"}
    props.update({name: d.schema() for name, d in cls._param_decls.items()})
    required = ["type"] + [n for n, d in cls._param_decls.items() if d.required]
    return {"type": "object", "description": summary(cls), "properties": props,
            "required": required, "additionalProperties": False}


def graph_schema(types: dict[str, type[Block]]) -> dict:
    """JSON Schema of a YAML flow graph with the given block types."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cvstream flow graph",
        "type": "object",
        "additionalProperties": False,
        "required": ["blocks"],
        "properties": {
            "imports": {"type": "array", "items": {"type": "string"}},
            "options": {"type": "object", "additionalProperties": False,
                        "properties": {"fuse": {"type": "boolean"},
                                       "workers": {"type": "integer", "minimum": 0}}},
            "variables": {"type": "object"},
            "fragments": {"type": "object", "additionalProperties": {
                "type": ["object", "null"], "additionalProperties": False,
                "properties": {"cpus": {"type": "number", "minimum": 0},
                               "memory": {"type": "number", "minimum": 0},
                               "gpus": {"type": "number", "minimum": 0},
                               "labels": {"type": "object",
                                          "additionalProperties": {"type": "string"}}}}},
            "blocks": {"type": "object",
                       "additionalProperties": {"oneOf": [block_schema(c)
                                                          for c in types.values()]}},
            "connections": {"type": "array", "items": {"oneOf": [
                {"type": "string", "pattern": r"^\s*[A-Za-z_]\w*(\.\w+)?\s*->\s*"
                                              r"[A-Za-z_]\w*(\.\w+)?\s*$"},
                {"type": "object", "required": ["src", "dst"],
                 "properties": {"src": {"type": "string"}, "dst": {"type": "string"},
                                "buffer": {"type": "integer", "minimum": 1}},
                 "additionalProperties": False}]}},
        },
    }
