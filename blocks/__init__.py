"""The cvstream block library. Importing this package registers every built-in block."""
from . import (audio_io, basic, fft, file_io, npy_io, sigmf_io, signal_source,  # noqa: F401
               sinks, zmq_io)
