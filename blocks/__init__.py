"""The cvstream block library: each block class under its own name (``from cvstream.blocks
import FFT``; ``cvstream blocks`` lists the names). Its modules load when first asked for:
a class by name loads them all, as does the registry (``cvstream.registry``) before it
looks up a type, while ``import cvstream.blocks.segmenter`` loads that module and what it
imports only. A process that runs one block (the segmenter's worker process, a block inside
GNU Radio) so starts without the others' imports (scipy.signal, ZeroMQ, soundfile)."""
from __future__ import annotations

from importlib import import_module

#: the modules that hold the built-in blocks
MODULES = ("aec", "aec_demo", "audio_io", "basic", "cfar", "fft", "file_io", "kalman_echo",
           "nlms", "npy_io", "onnx_model", "plots", "radar_imaging", "radar_io", "segmenter",
           "sigmf_annotations", "sigmf_io", "signal_source", "sinks", "spectrum_synth", "stft",
           "zmq_io")

_classes: dict | None = None


def block_classes() -> dict:
    """Every built-in block class by its class name, its module loaded (and so registered)."""
    global _classes
    if _classes is None:
        from cvstream.block import Block
        out = {}
        for name in MODULES:
            module = import_module(f"{__name__}.{name}")
            for attr, obj in vars(module).items():
                if isinstance(obj, type) and issubclass(obj, Block) and obj.type_name and \
                        obj.__module__ == module.__name__:
                    out[attr] = obj
        _classes = out
    return _classes


def __getattr__(name: str):
    if name == "__all__":
        return sorted(block_classes())
    # a class's name (capitalized); a module's name falls through to the import system
    if name[:1].isupper() and name in block_classes():
        return block_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(block_classes()))
