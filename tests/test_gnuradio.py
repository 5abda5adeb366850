"""Interop with the real GNU Radio (Debian's package, under /usr/bin/python3):
GNU Radio -> gr-zeromq -> `cvstream run` -> gr-zeromq -> GNU Radio, bit-exact, tags intact."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import cvstream_cmd, free_port
from cvstream import pmt

GR_DIR = Path(__file__).parent / "gr"
pytestmark = pytest.mark.gnuradio


def relay_graph(graph_file, src_pattern, in_port, sink_pattern, out_port, pass_tags):
    return graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{in_port}", pattern: {src_pattern},
           pass_tags: {str(pass_tags).lower()}, idle_timeout: 6}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{out_port}", pattern: {sink_pattern},
           pass_tags: {str(pass_tags).lower()}}}
    connections: [rx -> tx]
    """)


def run_relay(gnuradio, graph, send_args, recv_args, tmp_path):
    out = str(tmp_path / "gr_rx")
    receiver = subprocess.Popen([gnuradio, str(GR_DIR / "receive.py"), *recv_args, out],
                                stderr=subprocess.PIPE, text=True)
    relay = subprocess.Popen(cvstream_cmd("run", str(graph), "--stats-json",
                                          str(tmp_path / "stats.json")),
                             stderr=subprocess.PIPE, text=True)
    sender = subprocess.Popen([gnuradio, str(GR_DIR / "send.py"), *send_args],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert sender.wait(120) == 0, sender.stderr.read()
        assert receiver.wait(120) == 0, receiver.stderr.read()
        assert relay.wait(60) == 0, relay.stderr.read()
    finally:
        for p in (sender, receiver, relay):
            if p.poll() is None:
                p.kill()
    data = np.load(out + ".npy")
    tags = json.loads(Path(out + ".json").read_text())
    return data, tags


def ramp(n):
    i = np.arange(n, dtype=np.float32)
    return (i - 1j * i).astype(np.complex64)


def test_push_pull_with_tags_bit_exact(gnuradio, graph_file, tmp_path):
    n = 200_000
    p_in, p_out = free_port(), free_port()
    graph = relay_graph(graph_file, "pull", p_in, "push", p_out, True)
    data, tags = run_relay(
        gnuradio, graph,
        ["push", f"tcp://127.0.0.1:{p_in}", "1", str(n), "0"],
        ["pull", f"tcp://127.0.0.1:{p_out}", "1", str(n)], tmp_path)
    assert data.tobytes() == ramp(n).tobytes()
    got = [(t["offset"], t["key"], t["value"]) for t in tags]
    assert got == [
        (0, "rx_rate", pmt.serialize(1e6).hex()),
        (1000, "rx_freq", pmt.serialize(915e6).hex()),
        (4321, "rx_time", pmt.serialize((np.uint64(1700000000), 0.25)).hex()),
        (n - 1, "burst", pmt.serialize(42).hex()),
    ]


def test_pub_sub_raw_contiguous_and_exact(gnuradio, graph_file, tmp_path):
    n_sent, n_recv = 3_000_000, 500_000
    p_in, p_out = free_port(), free_port()
    graph = relay_graph(graph_file, "sub", p_in, "pub", p_out, False)
    data, tags = run_relay(
        gnuradio, graph,
        ["pub", f"tcp://127.0.0.1:{p_in}", "0", str(n_sent), "1e6"],
        ["sub", f"tcp://127.0.0.1:{p_out}", "0", str(n_recv)], tmp_path)
    # PUB/SUB joins late (by design); what arrives must be a gap-free slice of the ramp
    assert len(data) == n_recv
    start = int(data[0].real)
    assert data.tobytes() == ramp(start + n_recv)[start:].tobytes()
    assert tags == []
    stats = json.loads((tmp_path / "stats.json").read_text())
    counters = stats["blocks"]["rx"]["counters"]
    assert counters.pop("peer_disconnects", 0) <= 1  # the publisher ending closes its link
    assert counters == {}  # nothing malformed, nothing lost


def test_pmt_codec_matches_gnuradio(gnuradio):
    res = subprocess.run([gnuradio, str(GR_DIR / "pmt_bytes.py")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    gr_hex = json.loads(res.stdout)
    ours = {
        "true": True, "nil": None, "symbol": "rx_freq", "long": -123456, "wide": 1 << 45,
        "uint64": np.uint64(1 << 63), "double": -0.125, "complex": 0.5 - 2j,
        "rx_time": (np.uint64(1700000000), 0.5), "dict": {"label": "qpsk", "freq": 2.4e9},
        "pair": pmt.Pair("a", 1), "f32vec": np.array([1, -2, 3.5], np.float32),
        "c32vec": np.array([1 + 2j, -1j], np.complex64),
        "u8vec": np.array([0, 1, 254, 255], np.uint8), "vector": [1.0, 1.0],
    }
    for name, value in ours.items():
        assert pmt.serialize(value).hex() == gr_hex[name], name
        assert pmt.serialize(pmt.deserialize(bytes.fromhex(gr_hex[name]))).hex() == gr_hex[name]


def test_pmt_messages_round_trip_through_gnuradio(gnuradio, graph_file, tmp_path):
    """cvstream zmq_msg_sink(pmt) -> GNU Radio pull_msg_source -> a GNU Radio message
    handler -> push_msg_sink -> cvstream zmq_msg_source(pmt) -> JSON lines."""
    to_gr, from_gr = free_port(), free_port()
    out = tmp_path / "back.jsonl"
    back = graph_file(f"""
    blocks:
      rx: {{type: zmq_msg_source, address: "tcp://127.0.0.1:{from_gr}", pattern: pull,
           format: pmt, idle_timeout: 8}}
      log: {{type: message_sink, path: {out}}}
    connections: [rx -> log]
    """)
    sent = tmp_path / "sent.jsonl"
    sent.write_text("".join(json.dumps({"label": f"sig{i}", "freq": 1e6 * i, "n": i}) + "\n"
                            for i in range(5)))
    fwd_port = free_port()
    fwd = graph_file(f"""
    blocks:
      rx: {{type: zmq_msg_source, address: "tcp://127.0.0.1:{fwd_port}", pattern: pull,
           format: json, idle_timeout: 6}}
      tx: {{type: zmq_msg_sink, address: "tcp://127.0.0.1:{to_gr}", pattern: push,
           format: pmt}}
    connections: [rx -> tx]
    """)
    gr_proc = subprocess.Popen([gnuradio, str(GR_DIR / "messages.py"),
                                f"tcp://127.0.0.1:{to_gr}", f"tcp://127.0.0.1:{from_gr}", "5"],
                               stderr=subprocess.PIPE, text=True)
    receiver = subprocess.Popen(cvstream_cmd("run", str(back)), stderr=subprocess.PIPE,
                                text=True)
    forwarder = subprocess.Popen(cvstream_cmd("run", str(fwd)), stderr=subprocess.PIPE,
                                 text=True)
    import time

    import zmq
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.bind(f"tcp://127.0.0.1:{fwd_port}")
    time.sleep(1.0)
    for line in sent.read_text().splitlines():
        push.send(line.encode())
    try:
        assert forwarder.wait(60) == 0, forwarder.stderr.read()
        assert gr_proc.wait(90) == 0, gr_proc.stderr.read()
        assert receiver.wait(60) == 0, receiver.stderr.read()
    finally:
        push.close(0)
        for p in (gr_proc, receiver, forwarder):
            if p.poll() is None:
                p.kill()
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == [{"label": f"sig{i}", "freq": 1e6 * i, "n": i, "seen_by": "gnuradio"}
                   for i in range(5)]


def test_spectrum_zmq_graph_driven_by_gnuradio(gnuradio, tmp_path):
    """graphs/spectrum_zmq.yml against a real GNU Radio PUB sink with rx_rate/rx_freq tags:
    the tone comes back as a detection at its absolute frequency in Hz."""
    import time

    import zmq
    iq, det = free_port(), free_port()
    graph = Path(__file__).parent.parent / "graphs" / "spectrum_zmq.yml"
    relay = subprocess.Popen(cvstream_cmd("run", str(graph), "--set",
                                          f"iq=tcp://127.0.0.1:{iq}", "--set",
                                          f"detections=tcp://127.0.0.1:{det}", "--set",
                                          "sdr.idle_timeout=8"),
                             stderr=subprocess.PIPE, text=True)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{det}")
    time.sleep(0.5)
    gr_proc = subprocess.Popen([gnuradio, str(GR_DIR / "send_tone.py"),
                                f"tcp://127.0.0.1:{iq}", "3e6", "0.5"],
                               stderr=subprocess.PIPE, text=True)
    try:
        assert gr_proc.wait(120) == 0, gr_proc.stderr.read()
        assert relay.wait(60) == 0, relay.stderr.read()
        msgs = []
        while sub.poll(500):
            msgs.append(json.loads(sub.recv()))
    finally:
        sub.close(0)
        for p in (gr_proc, relay):
            if p.poll() is None:
                p.kill()
    tones = [m for m in msgs if m["freq_lower_edge"] <= 2.403e9 <= m["freq_upper_edge"]]
    assert tones, msgs
    assert tones[0]["bandwidth"] < 1e6 and tones[0]["sample_count"] > 4_000_000
