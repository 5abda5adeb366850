"""The `cvstream` command: run, stats, signals, failures, blocks."""
import json
from pathlib import Path
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import cvstream_cmd, run_cli

ENDLESS = """
blocks:
  src: {{type: signal_source, waveform: noise, chunk: 4096}}
  pace: {{type: throttle, rate: 2e6}}
  snk: {{type: npy_sink, path: {out}}}
connections: [src -> pace, pace -> snk]
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_drains_flushes_and_exits_zero(graph_file, tmp_path, sig):
    out = tmp_path / "o.npy"
    stats = tmp_path / "s.json"
    proc = subprocess.Popen(cvstream_cmd("run", str(graph_file(ENDLESS.format(out=out))),
                                         "--stats-json", str(stats)),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60    # the sink opens its file once the graph runs
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert "draining" in err and "Traceback" not in err
    report = json.loads(stats.read_text())["blocks"]
    saved = np.load(out)  # a complete, valid file
    assert len(saved) == report["src"]["items_out"] == report["snk"]["items_in"] > 100000


def test_block_failure_is_one_line_exit_one(graph_file, tmp_path):
    # a float32 stream into a ci16 file sink is a type error caught at validation...
    bad = graph_file("""
    blocks:
      src: {type: signal_source, dtype: float32, items: 10}
      snk: {type: file_sink, path: /tmp/x.ci16, format: ci16}
    connections: [src -> snk]
    """)
    res = run_cli("run", str(bad))
    assert res.returncode == 2 and "format ci16 takes complex64 items, got float32" in res.stderr
    # ...while a sink that fails at run time stops the graph with one line naming it: a
    # raw file carries no sample rate, and none is set
    np.zeros(1000, np.float32).tofile(tmp_path / "x.f32")
    run_fail = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {tmp_path / 'x.f32'}, format: f32}}
      snk: {{type: audio_sink, path: {tmp_path / 'f.wav'}}}
    connections: [src -> snk]
    """)
    res = run_cli("run", str(run_fail))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvstream: error: block 'snk' (audio_sink)")
    assert "Traceback" not in res.stderr


def test_stats_table_and_json(graph_file, tmp_path):
    path = graph_file("""
    blocks:
      src: {type: signal_source, items: 1000000}
      gain: {type: multiply_const, k: 2}
      snk: {type: null_sink}
    connections: [src -> gain, gain -> snk]
    """)
    stats = tmp_path / "s.json"
    for fused in (True, False):  # stats stay per block when the three run fused
        res = run_cli("run", str(path), "--stats", "--stats-json", str(stats),
                      *([] if fused else ["--no-fuse"]))
        assert res.returncode == 0
        assert "gain" in res.stderr and "p99 us" in res.stderr
        report = json.loads(stats.read_text())
        g = report["blocks"]["gain"]
        assert g["items_in"] == g["items_out"] == 1000000
        assert g["work_calls"] == 1000000 // 16384 + 1
        assert 0 < g["work_p50_us"] <= g["work_p99_us"] <= g["work_max_us"]
        assert report["blocks"]["snk"]["items_in"] == 1000000
        if fused:
            assert g["fused_with"] == ["src", "snk"] and report["buffers"] == {}
            assert "run fused" in res.stderr
        else:
            assert g["fused_with"] == [] and "max fill" in res.stderr
            buf = report["buffers"]["src.out -> gain.inp"]
            assert 0 < buf["max_fill"] <= buf["capacity"]


def test_blocks_listing_page_and_schema():
    res = run_cli("blocks")
    assert res.returncode == 0 and "zmq_source" in res.stdout and "fft" in res.stdout
    page = run_cli("blocks", "zmq_source").stdout
    assert "pass_tags" in page and "Example" in page and "idle_timeout" in page
    schema = json.loads(run_cli("blocks", "--schema").stdout)
    assert "blocks" in schema["properties"]
    res = run_cli("blocks", "zmq_sorce")
    assert res.returncode == 2 and "did you mean 'zmq_source'" in res.stderr


def test_example_graphs_validate(tmp_path):
    from pathlib import Path

    import yaml
    graphs = sorted(Path(__file__).parent.parent.joinpath("graphs").glob("*.yml"))
    assert len(graphs) >= 4
    for graph in graphs:
        variables = yaml.safe_load(graph.read_text()).get("variables", {})
        sets = []
        if "input" in variables and "sigmf_source" in graph.read_text():
            from cvstream.models.spectrum.synth import write_sigmf
            meta = write_sigmf(str(tmp_path / "rec"), np.zeros(4096, np.complex64), [], 1e6)
            sets = ["--set", f"input={meta}"]
        elif "input" in variables and "npy_source" in graph.read_text():  # radar sweeps
            np.save(tmp_path / "sweeps.npy", np.zeros((2, 16, 8, 8), np.complex64))
            sets = ["--set", f"input={tmp_path / 'sweeps.npy'}"]
        elif "input" in variables:  # graphs that read a file get a real one
            (tmp_path / "in.raw").write_bytes(bytes(4096))
            sets = ["--set", f"input={tmp_path / 'in.raw'}"]
        if "output" in variables:
            sets += ["--set", f"output={tmp_path / Path(str(variables['output'])).name}"]
        for name, value in variables.items():  # audio inputs get real 16 kHz WAV files
            if name != "output" and str(value).endswith(".wav"):
                import soundfile as sf
                sf.write(tmp_path / f"{name}.wav", np.zeros(1600, np.float32), 16000)
                sets += ["--set", f"{name}={tmp_path / f'{name}.wav'}"]
        res = run_cli("validate", str(graph), *sets)
        assert res.returncode == 0, res.stderr


def test_quickstart_runs(tmp_path):
    from pathlib import Path
    graph = Path(__file__).parent.parent / "graphs" / "quickstart.yml"
    out = tmp_path / "spectra.npy"
    res = run_cli("run", str(graph), "--set", f"output={out}", "--set", "head.n=2000000",
                  "--set", "decimate.n=1")
    assert res.returncode == 0, res.stderr
    spectra = np.load(out)
    assert spectra.shape == (-(-2000000 // 1024), 1024)
    # the chirp sweeps 0.5..4.5 MHz of 20 MHz: its energy sits right of DC, none far left
    power = 10 * np.log10((10 ** (spectra / 10)).mean(axis=0))
    assert power[512 + 30:512 + 225].min() > power[:200].max() + 20


def test_progress_bar_on_a_terminal(graph_file, tmp_path):
    import os
    import pty
    src = tmp_path / "big.cf32"
    np.zeros(6_000_000, np.complex64).tofile(src)
    path = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {src}, chunk: 65536}}
      pace: {{type: throttle, rate: 4e6}}
      snk: {{type: null_sink}}
    connections: [src -> pace, pace -> snk]
    """)
    master, slave = pty.openpty()
    proc = subprocess.Popen(cvstream_cmd("run", str(path), "--stats"), stderr=slave,
                            stdout=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(30) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "%" in screen and "/6000000 items" in screen   # the progress bar, redrawn
    assert screen.count("p99 us") >= 2                     # live stats, then the final table


def test_schema_accepts_every_shipped_graph_and_refuses_bad_values():
    import glob

    import jsonschema
    import yaml
    schema = json.loads(run_cli("blocks", "--schema").stdout)
    validator = jsonschema.Draft202012Validator(schema)
    graphs = sorted(glob.glob(str(Path(__file__).parent.parent / "graphs" / "*.yml")))
    assert len(graphs) >= 14
    for path in graphs:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(open(path)))]
        assert errors == [], (path, errors)
    bad = {"blocks": {"src": {"type": "signal_source", "rate": "abc"}}}
    assert not validator.is_valid(bad)
    assert validator.is_valid({"blocks": {"src": {"type": "signal_source", "rate": "4e6",
                                                  "items": "${n}"}}})
    one = json.loads(run_cli("blocks", "fft", "--schema").stdout)
    assert one["properties"]["type"] == {"const": "fft"} and "size" in one["properties"]


def test_blocks_page_names_derived_port_types():
    page = run_cli("blocks", "zmq_source").stdout
    assert "dtype from 'dtype', shape from 'shape'" in page and "$" not in page.split(
        "Ports:")[1].split("Parameters:")[0]


def test_schema_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(" ".join(cvstream_cmd("blocks", "--schema")) + " | head -1",
                          shell=True, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "{" and proc.stderr == ""


def test_second_interrupt_aborts_with_exit_one(graph_file):
    """The first Ctrl-C drains (here a zmq_sink waits for a peer that never reads); the
    second aborts, and the exit status says the outputs may be incomplete."""
    import zmq

    from conftest import free_port
    port = free_port()
    peer = zmq.Context.instance().socket(zmq.PULL)
    peer.setsockopt(zmq.RCVHWM, 1)
    peer.connect(f"tcp://127.0.0.1:{port}")  # connected, never reads
    path = graph_file(f"""
    blocks:
      src: {{type: signal_source, waveform: noise, chunk: 4096}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push, hwm: 2}}
    connections: [src -> tx]
    """)
    monitor = peer.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    proc = subprocess.Popen(cvstream_cmd("run", str(path)), stderr=subprocess.PIPE,
                            text=True)
    # the sink has bound and the peer joined: the graph runs (a fixed wait raced a slow
    # machine's start-up), then its frames fill both queues
    assert monitor.poll(60_000), "the sink never took the peer"
    monitor.close(0)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two pending SIGINTs would merge into one
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 1
    peer.close(0)
    err = proc.stderr.read()
    assert "second interrupt: aborting" in err and "outputs may be incomplete" in err


def test_zmq_sink_without_a_peer_stops_at_once(graph_file, tmp_path):
    """Interrupted while nobody takes its frames, a zmq_sink gives up at once (no 2 s wait
    for a peer that is not there) and counts what it could not deliver. A plain TCP socket
    listens where it connects, to tell when the graph runs (its blocks have started), and
    closes at once, before ZeroMQ's handshake. (A fixed wait raced the start on a slow
    machine: interrupted while loading, the run exits 1.)"""
    import socket
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    port = listener.getsockname()[1]
    path = graph_file(f"""
    blocks:
      src: {{type: signal_source, chunk: 4096}}
      pace: {{type: throttle, rate: 1e6}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push,
           bind: false, hwm: 4}}
    connections: [src -> pace, pace -> tx]
    """)
    stats = tmp_path / "s.json"
    proc = subprocess.Popen(cvstream_cmd("run", str(path), "--stats-json", str(stats)),
                            stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = listener.accept()   # the sink has connected: the graph runs
        conn.close()
        listener.close()              # gone: no peer to wait for
        time.sleep(1.0)               # its frames fill the queue (hwm 4)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, proc.stderr.read()
        assert time.monotonic() - t0 < 1.5
    finally:
        proc.kill()
        listener.close()
    counters = json.loads(stats.read_text())["blocks"]["tx"]["counters"]
    assert counters["undelivered_items"] > 0


def test_stats_table_keeps_long_names(graph_file):
    path = graph_file("""
    blocks:
      a_rather_long_source_name: {type: signal_source, items: 1000}
      sink_with_a_long_name_too: {type: null_sink}
    connections: [a_rather_long_source_name -> sink_with_a_long_name_too]
    """)
    res = run_cli("run", str(path), "--stats", "--no-fuse")
    assert "a_rather_long_source_name  signal_source" in res.stderr
    assert "a_rather_long_source_name.out -> sink_with_a_long_name_too.inp" in res.stderr


USER_BLOCK = '''
import numpy as np
from cvstream import In, Out, Param, SyncBlock, register

@register("user_gain_{tag}")
class UserGain(SyncBlock):
    """Multiply by k. Ports: in -> out. Example: ``g: {{type: user_gain_{tag}, k: 2}}``"""
    inp = In("complex64")
    out = Out("complex64")
    k = Param(float, default=1.0)

    def work(self, x):
        return x * np.complex64(self.k)
'''


def test_user_blocks_from_a_file_or_module(graph_file, tmp_path):
    (tmp_path / "myblocks.py").write_text(USER_BLOCK.format(tag="file"))
    out = tmp_path / "o.npy"
    path = graph_file(f"""
    imports: [myblocks.py]
    blocks:
      src: {{type: signal_source, items: 1000, waveform: constant}}
      g: {{type: user_gain_file, k: 3}}
      snk: {{type: npy_sink, path: {out}}}
    connections: [src -> g, g -> snk]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    assert np.allclose(np.load(out), 3.0)
    (tmp_path / "user_mod.py").write_text(USER_BLOCK.format(tag="mod"))
    res = run_cli("blocks", "--import", "user_mod", cwd=tmp_path)
    assert res.returncode == 0 and "user_gain_mod" in res.stdout and "UserGain" in res.stdout
    res = run_cli("validate", str(path).replace("graph1", "nope"), "--import", "no_such_mod")
    assert res.returncode == 2
    assert res.stderr.strip() == ("cannot import 'no_such_mod': "
                                  "ModuleNotFoundError: No module named 'no_such_mod'")


def test_a_reader_that_ends_early_ends_the_writing_not_the_graph(graph_file, tmp_path):
    """``cvstream run graph.yml | head -1``: once standard output's reader has gone, a sink
    writing there counts its later lines (``unwritten_lines``) after one line on stderr,
    and the graph runs to its end and exits 0 (no BrokenPipeError from the sink or from
    Python's flush at exit)."""
    stats = tmp_path / "s.json"
    path = graph_file("""
    blocks:
      sky: {type: spectrum_synth_source, rate: 2e6, scenes: 60, seed: 2}
      pace: {type: throttle, rate: 4e6}
      drop: {type: null_sink}
      out: {type: message_sink}
    connections: [sky -> pace, pace -> drop, sky.truth -> out]
    """)
    proc = subprocess.Popen(cvstream_cmd("run", str(path), "--stats-json", str(stats)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(proc.stdout.readline())   # a detection's truth, then no more
    proc.stdout.close()
    assert proc.wait(120) == 0
    err = proc.stderr.read().strip().splitlines()
    assert first["sample_count"] > 0
    assert len(err) == 1 and "out: standard output closed" in err[0], err
    report = json.loads(stats.read_text())["blocks"]
    assert report["out"]["counters"]["unwritten_lines"] > 0
    assert report["drop"]["items_in"] == report["sky"]["items_out"] > 0
