"""cvstream model families: network definitions, synthesizers, training and export.

Importing this package needs no torch: it only locates the shipped ONNX models. The
training side (``cvstream.models.nn``, ``.export``, the model families) imports torch.
"""
from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "shipped"


def shipped_models() -> dict[str, Path]:
    """Name -> path of every ONNX model shipped with cvstream."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.onnx"))}


def resolve_model(spec: str) -> str:
    """``builtin:NAME`` -> the shipped file; anything else is a path."""
    if spec.startswith("builtin:"):
        name = spec[len("builtin:"):]
        models = shipped_models()
        if name not in models:
            from cvstream.errors import CvstreamError
            known = ", ".join(models) or "none"
            raise CvstreamError(f"no shipped model '{name}' (shipped: {known})")
        return str(models[name])
    return spec
