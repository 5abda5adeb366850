"""The cvstream block library. Importing this package registers every built-in block."""
from . import (audio_io, basic, fft, file_io, npy_io, onnx_model, sigmf_io,  # noqa: F401
               signal_source, sinks, zmq_io)
