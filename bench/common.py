"""Helpers shared by the benchmark scripts."""
from __future__ import annotations

import os
import socket
import subprocess

#: Debian's gnuradio lives in the system Python, not the venv
GR_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gnuradio_available() -> bool:
    return os.path.exists(GR_PYTHON) and subprocess.run(
        [GR_PYTHON, "-c", "import gnuradio.zeromq"], capture_output=True).returncode == 0
