"""`cvstream validate`: every user error is one line with file:line and a non-zero exit."""
import re
import time

import pytest

from conftest import run_cli

OK = """
variables:
  rate: 1e6
blocks:
  src: {type: signal_source, rate: "${rate}", items: 1000}
  gain: {type: multiply_const, k: 0.5}
  snk: {type: null_sink}
connections:
  - src -> gain
  - gain.out -> snk.inp
"""

CASES = [
    ("yaml syntax", "blocks:\n  src: {type: signal_source\n  snk: [\n", 3, "YAML syntax error"),
    ("unknown type", """
blocks:
  src: {type: signal_source}
  gain: {type: multiply_cnst}
  snk: {type: null_sink}
connections: [src -> gain, gain -> snk]
""", 3, "unknown block type 'multiply_cnst' (did you mean 'multiply_const'?)"),
    ("unknown param", """
blocks:
  src:
    type: signal_source
    freqq: 10
  snk: {type: null_sink}
connections: [src -> snk]
""", 4, "unknown parameter (did you mean 'freq'?)"),
    ("missing param", """
blocks:
  src: {type: signal_source}
  snk: {type: head}
  n: {type: null_sink}
connections: [src -> snk, snk -> n]
""", 3, "parameter 'n': missing"),
    ("wrong type", """
blocks:
  src:
    type: signal_source
    items: many
  snk: {type: null_sink}
connections: [src -> snk]
""", 4, "parameter 'items': 'many' is not a number"),
    ("unknown port", """
blocks:
  src: {type: signal_source}
  snk: {type: null_sink}
connections:
  - src.output -> snk
""", 5, "block 'src' has no output port 'output' (outputs: out)"),
    ("dtype mismatch", """
blocks:
  src: {type: signal_source, dtype: float32}
  spec: {type: fft}
  snk: {type: null_sink}
connections:
  - src -> spec
  - spec -> snk
""", 6, "type mismatch: upstream gives float32, 'inp' takes complex64"),
    ("unconnected", """
blocks:
  src: {type: signal_source}
  gain: {type: multiply_const}
  snk: {type: null_sink}
connections:
  - src -> gain
""", 3, "block 'gain': output port 'out' is not connected\n"),
    ("cycle", """
blocks:
  a: {type: multiply_const}
  b: {type: multiply_const}
connections:
  - a -> b
  - b -> a
""", 2, "cycle"),
    ("unreadable file", """
blocks:
  src: {type: file_source, path: /nonexistent/x.cf32}
  snk: {type: null_sink}
connections: [src -> snk]
""", 2, "file '/nonexistent/x.cf32' does not exist"),
    ("unknown variable", """
blocks:
  src: {type: signal_source, rate: "${nope}"}
  snk: {type: null_sink}
connections: [src -> snk]
""", 2, "unknown variable '${nope}'"),
    ("bad connection", """
blocks:
  src: {type: signal_source}
  snk: {type: null_sink}
connections:
  - src => snk
""", 5, "must look like 'src -> dst'"),
    ("unknown section", """
blocks:
  src: {type: signal_source}
edges: []
""", 3, "unknown section 'edges'"),
    ("complex on real", """
blocks:
  src: {type: signal_source, dtype: float32}
  gain: {type: multiply_const, k: 1+2j}
  snk: {type: null_sink}
connections: [src -> gain, gain -> snk]
""", 3, "complex constant"),
]


CASES += [  # input a careless or hostile author writes
    ("python tag", 'blocks:\n  src: {type: signal_source,\n'
     '        rate: !!python/object/apply:os.system ["true"]}\n',
     3, "could not determine a constructor"),
    ("zmq port", 'blocks:\n  rx: {type: zmq_source, address: "tcp://127.0.0.1:notaport"}\n'
     '  snk: {type: null_sink}\nconnections: [rx -> snk]\n', 2, "port 'notaport' is not a number"),
    ("zmq scheme", 'blocks:\n  rx: {type: zmq_msg_source, address: "udp://x:1"}\n'
     '  log: {type: message_sink}\nconnections: [rx -> log]\n', 2, "is not a ZeroMQ endpoint"),
    ("file_sink on a directory", 'blocks:\n  src: {type: signal_source, items: 10}\n'
     '  out: {type: file_sink, path: /tmp}\nconnections: [src -> out]\n', 3, "is a directory"),
]


@pytest.mark.parametrize("name, text, line, words", CASES, ids=[c[0] for c in CASES])
def test_validation_errors_are_one_line_with_location(graph_file, name, text, line, words):
    path = graph_file(text)
    res = run_cli("validate", str(path))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()  # one line per mistake, each with its place
    assert lines[0].startswith(f"{path}:{line}: "), res.stderr
    assert all(re.match(rf"{re.escape(str(path))}:\d+: ", ln) for ln in lines), res.stderr
    assert words in res.stderr


def test_valid_graph_passes_and_run_refuses_invalid(graph_file):
    good = graph_file(OK)
    res = run_cli("validate", str(good))
    assert res.returncode == 0 and "ok (3 blocks, 2 connections)" in res.stdout
    bad = graph_file(CASES[1][1])
    res = run_cli("run", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_set_overrides_variables_and_params(graph_file, tmp_path):
    path = graph_file(OK.replace("null_sink}", "npy_sink, path: x.npy}"))
    out = tmp_path / "o.npy"
    res = run_cli("run", str(path), "--set", "rate=2e6", "--set", "src.items=300",
                  "--set", f"snk.path={out}")
    assert res.returncode == 0, res.stderr
    import numpy as np
    assert np.load(out).shape == (300,)
    res = run_cli("validate", str(path), "--set", "nosuch=1")
    assert res.returncode == 2 and "no such variable" in res.stderr
    res = run_cli("validate", str(path), "--set", "ghost.k=1")
    assert res.returncode == 2 and "no block named 'ghost'" in res.stderr


def test_several_errors_are_all_reported(graph_file):
    path = graph_file("""
blocks:
  a: {type: signal_source, bogus: 1}
  b: {type: nope}
""")
    res = run_cli("validate", str(path))
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(re.match(rf"{re.escape(str(path))}:\d+: ", ln) for ln in lines)


def test_missing_graph_file():
    res = run_cli("validate", "/nonexistent.yml")
    assert res.returncode == 2
    assert res.stderr.strip() == \
        "/nonexistent.yml: cannot read flow graph: No such file or directory"




def test_a_binary_graph_file_is_one_line(tmp_path):
    path = tmp_path / "graph.yml"
    path.write_bytes(b"blocks:\n  a: \xff\xfe\x00\x81\n")
    res = run_cli("validate", str(path))
    assert res.returncode == 2
    assert res.stderr.strip() == f"{path}:2: not UTF-8 text (byte 0xff); a flow graph is a " \
                                 "YAML text file"


def test_a_graph_file_with_a_control_character_is_one_line(tmp_path):
    """UTF-8 text that YAML does not allow (a NUL from a corrupted copy): one line with the
    file, the line and the character (PyYAML's own message spans two)."""
    path = tmp_path / "graph.yml"
    path.write_bytes(b"blocks:\n  src: {type: signal_source}\x00\n")
    res = run_cli("validate", str(path))
    assert res.returncode == 2
    assert res.stderr.strip() == f"{path}:2: YAML error: character #x0000 is not allowed " \
                                 "(special characters are not allowed); a flow graph is a " \
                                 "YAML text file"


def test_a_yaml_alias_bomb_is_refused_quickly_without_echo(tmp_path):
    lines = ["variables:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 10):
        prev = chr(ord("a") + k - 1)
        cur = chr(ord("a") + k)
        lines.append(f"  {cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    lines += ["blocks:", "  src: {type: signal_source, rate: *j}"]
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    res = run_cli("validate", str(path), timeout=30)
    assert time.monotonic() - t0 < 10
    assert res.returncode == 2
    assert "expands to more than 100000 YAML nodes" in res.stderr
    assert len(res.stderr) < 300  # the expansion is not echoed


def test_every_kind_of_mistake_is_listed_at_once(graph_file, tmp_path):
    """A bad parameter, an unknown block, a connection to a missing block, an unconnected
    block, a type mismatch and an unwritable file: all in one run, one line each, in line
    order."""
    path = graph_file(f"""
blocks:
  src: {{type: signal_source, rate: abc}}
  x: {{type: nosuch}}
  real: {{type: signal_source, dtype: float32}}
  fft: {{type: fft, size: 64}}
  lonely: {{type: multiply_const, k: 2}}
  out: {{type: npy_sink, path: {tmp_path}/no/such/dir/x.npy}}
connections:
  - ghost -> out
  - real -> fft
  - fft -> out
""")
    res = run_cli("validate", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 7, res.stderr
    numbers = [int(ln.split(":")[1]) for ln in lines]
    assert numbers == sorted(numbers)
    for words in ("'abc' is not a number", "unknown block type 'nosuch'", "unknown block "
                  "'ghost'", "input port 'inp' is not connected",
                  "output port 'out' is not connected", "does not exist",
                  "type mismatch"):
        assert sum(words in ln for ln in lines) == 1, (words, res.stderr)
