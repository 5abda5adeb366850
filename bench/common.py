"""Helpers shared by the benchmark scripts."""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Debian's gnuradio lives in the system Python, not the venv
GR_PYTHON = "/usr/bin/python3"


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory in MB (NaN once it has ended)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gnuradio_available() -> bool:
    return os.path.exists(GR_PYTHON) and subprocess.run(
        [GR_PYTHON, "-c", "import gnuradio.zeromq"], capture_output=True).returncode == 0


def scratch_dir(prefix: str = "cvstream-bench-") -> Path:
    """A fresh temporary directory for a bench's recordings and outputs, removed when the
    bench exits (a 20 Msps recording and the copies its graphs write take gigabytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path
