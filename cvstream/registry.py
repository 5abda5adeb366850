"""Block registry: the YAML type name is the name a block class registers under.

Built-in blocks register when their modules load (``cvstream.blocks.block_classes``, which
the registry calls before it looks a type up); third-party packages add blocks through the
``cvstream.blocks`` entry point group (each entry point names a module or a Block class).
"""
from __future__ import annotations

import difflib
from importlib import import_module

from .block import Block
from .errors import CvstreamError

_REGISTRY: dict[str, type[Block]] = {}
_loaded = False


def register(name: str):
    """Class decorator: ``@register("multiply_const")``."""

    def deco(cls: type[Block]) -> type[Block]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise CvstreamError(f"block type '{name}' registered twice")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import_module("cvstream.blocks").block_classes()
    # (here: importlib.metadata costs a process that only imports blocks, as the
    # segmenter's worker process does, a fortieth of a second)
    from importlib.metadata import entry_points
    for ep in entry_points(group="cvstream.blocks"):
        ep.load()


def block_types() -> dict[str, type[Block]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def lookup(name: str) -> type[Block]:
    """The block class for a type name; the error suggests the nearest known name."""
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    near = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise CvstreamError(f"unknown block type '{name}'{hint}")
