"""The cvstream block library. Importing this package registers every built-in block."""
from . import (aec, aec_demo, audio_io, basic, cfar, fft, file_io, nlms,  # noqa: F401
               npy_io, onnx_model, plots, radar_imaging, radar_io, segmenter, sigmf_io,
               signal_source, sinks, spectrum_synth, stft, zmq_io)
