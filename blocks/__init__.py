"""The cvstream block library. Importing this package registers every built-in block."""
from . import (audio_io, basic, cfar, fft, file_io, npy_io, onnx_model, plots,  # noqa: F401
               segmenter, sigmf_io, signal_source, sinks, spectrum_synth, stft,
               zmq_io)
