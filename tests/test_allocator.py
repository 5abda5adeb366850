"""The runtime's allocator settings: a streaming graph's large arrays reuse mapped pages."""
import json
import os
import platform
import subprocess
import sys

import pytest

# Each case runs in a fresh interpreter: the settings are per process and last for its life.
PROBE = """
import json, resource
import numpy as np
from cvstream import allocator
tuned = allocator.tune() if {tune} else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):   # warm: the heap grows to hold one call's arrays
    a = np.ones(1 << 20, np.complex64); b = a * 2; del a, b
before = faults()
for _ in range(40):   # a block's calls: 8 MiB arrays made and freed
    a = np.ones(1 << 20, np.complex64); b = a * 2; del a, b
print(json.dumps({{"tuned": tuned, "faults": faults() - before}}))
"""

GRAPH = """
from cvstream import allocator
from cvstream.loader import load_graph_text
from cvstream.scheduler import Scheduler
graph = load_graph_text('''
blocks:
  src: {type: signal_source, items: 1000}
  out: {type: null_sink}
connections: [src -> out]
''')
before = allocator._done
Scheduler(graph).run(timeout=30)
print(before, allocator._done)
"""

GLIBC = platform.libc_ver()[0] == "glibc"


def run(script: str, env: dict | None = None) -> str:
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True).stdout


def probe(tune: bool, env: dict | None = None) -> dict:
    return json.loads(run(PROBE.format(tune=tune), env))


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_tuned_allocator_reuses_pages_for_large_arrays():
    plain, tuned = probe(False), probe(True)
    assert tuned["tuned"] is True
    # untuned: each call faults in fresh pages (about 1000 a call here); tuned: none
    assert plain["faults"] > 40 * 500
    assert tuned["faults"] < 500


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_allocator_left_alone_where_the_user_chose():
    for extra in ({"CVSTREAM_MALLOC": "default"}, {"MALLOC_ARENA_MAX": "2"}):
        result = probe(True, {**os.environ, **extra})
        assert result["tuned"] is False
        assert result["faults"] > 40 * 500


def test_graph_start_tunes_the_allocator():
    assert run(GRAPH).split() == ["None", str(GLIBC)]
