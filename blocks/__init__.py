"""The cvstream block library. Importing this package registers every built-in block."""
from . import (audio_io, basic, cfar, fft, file_io, nlms, npy_io, onnx_model,  # noqa: F401
               plots, segmenter, sigmf_io, signal_source, sinks, spectrum_synth, stft,
               zmq_io)
