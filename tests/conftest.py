"""Shared helpers: run the real CLI in a subprocess, pick free TCP ports, write graphs."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GR_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cvstream_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cvstream", *args]


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cvstream_cmd(*args), capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.fixture
def graph_file(tmp_path):
    """write(text) -> path of a YAML graph file in tmp_path."""
    counter = [0]

    def write(text: str, name: str | None = None) -> Path:
        counter[0] += 1
        path = tmp_path / (name or f"graph{counter[0]}.yml")
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def gnuradio_available() -> bool:
    if not os.path.exists(GR_PYTHON):
        return False
    probe = subprocess.run([GR_PYTHON, "-c", "from gnuradio import gr, zeromq, blocks"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def gnuradio():
    """The Debian GNU Radio interpreter; in CI (CI=true) its absence is a failure."""
    if gnuradio_available():
        return GR_PYTHON
    if os.environ.get("CI") == "true":
        pytest.fail("GNU Radio is required in CI (apt-get install gnuradio)")
    pytest.skip("GNU Radio (Debian package) not installed")


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None
