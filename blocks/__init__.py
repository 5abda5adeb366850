"""The cvstream block library. Importing this package registers every built-in block, and
exports each block class under its own name: ``from cvstream.blocks import FFT``
(``cvstream blocks`` lists the names)."""
from cvstream.block import Block

from . import (aec, aec_demo, audio_io, basic, cfar, fft, file_io,  # noqa: F401
               kalman_echo, nlms, npy_io, onnx_model, plots, radar_imaging, radar_io,
               segmenter, sigmf_annotations, sigmf_io, signal_source, sinks,
               spectrum_synth, stft, zmq_io)


def _block_classes() -> dict[str, type[Block]]:
    out = {}
    for module in (aec, aec_demo, audio_io, basic, cfar, fft, file_io, kalman_echo, nlms,
                   npy_io,
                   onnx_model, plots, radar_imaging, radar_io, segmenter, sigmf_annotations,
                   sigmf_io,
                   signal_source, sinks, spectrum_synth, stft, zmq_io):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, Block) and obj.type_name and \
                    obj.__module__ == module.__name__:
                out[name] = obj
    return out


globals().update(_block_classes())
__all__ = sorted(_block_classes())
