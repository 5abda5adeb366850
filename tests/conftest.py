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


def run_echo_canceller(write_graph, tmp_path, block: str, mic, ref, rate: int = 16000,
                       *args: str):
    """WAV files of ``mic`` and ``ref`` through ``aec: {block}`` by ``cvstream run``:
    (the completed process, the output samples, their rate)."""
    import soundfile as sf
    sf.write(tmp_path / "mic.wav", mic, rate, subtype="FLOAT")
    sf.write(tmp_path / "ref.wav", ref, rate, subtype="FLOAT")
    path = write_graph(f"""
    blocks:
      mic: {{type: audio_source, path: {tmp_path / 'mic.wav'}}}
      ref: {{type: audio_source, path: {tmp_path / 'ref.wav'}}}
      aec: {block}
      out: {{type: audio_sink, path: {tmp_path / 'out.wav'}, subtype: FLOAT}}
    connections: [ref -> aec.ref, mic -> aec.mic, aec -> out]
    """)
    res = run_cli("run", str(path), *args)
    if res.returncode != 0:
        return res, None, None
    out, out_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    return res, out, out_rate


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
