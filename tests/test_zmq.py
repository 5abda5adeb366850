"""ZeroMQ blocks on real sockets, across real `cvstream run` processes."""
import json
import subprocess
import threading
import time

import numpy as np
import zmq

from conftest import cvstream_cmd, free_port, run_cli
from cvstream import pmt
from cvstream.chunk import Tag
from cvstream.zmq_wire import encode_header


def listening(port: int, timeout: float = 30.0) -> None:
    """Waits until 127.0.0.1:``port`` has a listening TCP socket (/proc/net/tcp, state 0A),
    without connecting to it."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            if any(f[1] == want and f[3] == "0A" for f in
                   (line.split() for line in list(table)[1:])):
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def start(path, *extra):
    return subprocess.Popen(cvstream_cmd("run", str(path), *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_push_pull_across_processes_is_lossless(graph_file, tmp_path):
    n = 10_000_000
    rng = np.random.default_rng(7)
    data = rng.standard_normal(2 * n, dtype=np.float32).view(np.complex64)
    data.tofile(tmp_path / "in.cf32")
    port = free_port()
    rx = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
           idle_timeout: 3}}
      snk: {{type: file_sink, path: {tmp_path / 'out.cf32'}}}
    connections: [rx -> snk]
    """)
    tx = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {tmp_path / 'in.cf32'}}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push}}
    connections: [src -> tx]
    """)
    receiver = start(rx)
    sender = start(tx)
    assert sender.wait(120) == 0, sender.stderr.read()
    assert receiver.wait(120) == 0, receiver.stderr.read()
    out = np.fromfile(tmp_path / "out.cf32", dtype=np.complex64)
    assert len(out) == n
    assert out.tobytes() == data.tobytes()


def _receiver(graph_file, tmp_path, port, extra=""):
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
           idle_timeout: 1.5, {extra}}}
      snk: {{type: npy_sink, path: {tmp_path / 'rx.npy'}}}
    connections: [rx -> snk]
    """)
    stats = tmp_path / "stats.json"
    return start(path, "--stats-json", str(stats)), stats


def _push(port):
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.bind(f"tcp://127.0.0.1:{port}")
    time.sleep(0.5)
    return sock


def test_malformed_raw_frames_are_dropped_and_counted(graph_file, tmp_path):
    port = free_port()
    proc, stats = _receiver(graph_file, tmp_path, port)
    sock = _push(port)
    good = np.arange(10, dtype=np.complex64)
    sock.send(good.tobytes())
    sock.send(b"\x01" * 13)  # not a multiple of 8 bytes
    sock.send((good + 10).tobytes())
    assert proc.wait(30) == 0
    sock.close()
    np.testing.assert_array_equal(np.load(tmp_path / "rx.npy"), np.arange(20))
    report = json.loads(stats.read_text())
    assert report["blocks"]["rx"]["counters"]["malformed"] == 1
    assert "dropped frame" in proc.stderr.read()


def test_bad_tagged_frames_dropped_stream_goes_on(graph_file, tmp_path):
    port = free_port()
    proc, stats = _receiver(graph_file, tmp_path, port, "pass_tags: true, max_frame: 4096")
    sock = _push(port)
    x = np.arange(4, dtype=np.complex64)
    sock.send(encode_header(0, [Tag(1, "burst", 3)]) + x.tobytes())
    sock.send(b"\x12\x34" + b"\x00" * 30)                                 # bad magic
    sock.send(encode_header(4, [Tag(4, "k", 1)])[:12])                    # truncated
    bad_pmt = bytearray(encode_header(4, [Tag(4, "k", 1)]) + x.tobytes())
    bad_pmt[27] = 0xEE                                                    # key type byte
    sock.send(bytes(bad_pmt))
    sock.send(encode_header(1004, []) + (x + 4).tobytes())                # gap of 1000
    sock.send(encode_header(0, []) + (x + 8).tobytes())                   # restarted sender
    assert proc.wait(30) == 0
    sock.close()
    np.testing.assert_array_equal(np.load(tmp_path / "rx.npy"), np.arange(12))
    counters = json.loads(stats.read_text())["blocks"]["rx"]["counters"]
    assert counters == {"bad_magic": 1, "truncated": 1, "bad_pmt": 1,
                        "lost_items": 1000, "restarts": 1}


def test_oversize_frame_disconnects_the_peer_before_it_is_buffered(graph_file, tmp_path):
    """A frame over max_frame never reaches memory: ZeroMQ closes that connection (counted);
    the peer reconnects and what it sends next arrives."""
    port = free_port()
    proc, stats = _receiver(graph_file, tmp_path, port, "max_frame: 4096")
    sock = _push(port)
    sock.send(np.arange(4, dtype=np.complex64).tobytes())
    sock.send(np.zeros(1000, np.complex64).tobytes())  # 8000 bytes > 4096
    time.sleep(0.6)  # the connection closes and comes back
    sock.send(np.arange(4, 8, dtype=np.complex64).tobytes())
    assert proc.wait(30) == 0
    sock.close()
    np.testing.assert_array_equal(np.load(tmp_path / "rx.npy"), np.arange(8))
    counters = json.loads(stats.read_text())["blocks"]["rx"]["counters"]
    assert counters == {"peer_disconnects": 1}
    assert "a peer disconnected" in proc.stderr.read()


def test_frames_already_received_are_joined_with_their_tags():
    """Many small frames (GNU Radio sends a few thousand samples each) come out as one chunk
    of up to ``coalesce`` bytes, each tag at its own item; a frame with tags but no samples
    ends the chunk, and its tags go to the first item of the next one."""
    from cvstream.blocks.zmq_io import ZmqSource
    port = free_port()
    sock = _push(port)
    rx = ZmqSource(address=f"tcp://127.0.0.1:{port}", pattern="pull", pass_tags=True,
                   coalesce=2000)  # bytes: full after 3 frames of 100 items
    rx.start()
    try:
        for k in range(6):  # 6 frames of 100 items, a tag on item 10 of each
            x = np.arange(100 * k, 100 * k + 100).astype(np.complex64)
            sock.send(encode_header(100 * k, [Tag(100 * k + 10, "frame", k)]) + x.tobytes())
        sock.send(encode_header(600, [Tag(600, "burst", 1)]))  # tags, no samples
        sock.send(encode_header(600, []) + np.arange(600, 650).astype(np.complex64).tobytes())
        time.sleep(0.5)
        chunks = []
        for _ in range(3):
            rx._out_tags.clear()
            x = rx.work()
            chunks.append((x.real.astype(int), [(i, k, v) for _, i, k, v in rx._out_tags]))
        assert rx.work() is None  # nothing more arrived
    finally:
        rx.stop()
        sock.close()
    assert [len(x) for x, _ in chunks] == [300, 300, 50]
    assert np.concatenate([x for x, _ in chunks]).tolist() == list(range(650))
    assert chunks[0][1] == [(10, "frame", 0), (110, "frame", 1), (210, "frame", 2)]
    assert chunks[1][1] == [(10, "frame", 3), (110, "frame", 4), (210, "frame", 5)]
    assert chunks[2][1] == [(0, "burst", 1)]


def test_gather_waits_for_the_frames_that_follow():
    """With ``gather`` the source sleeps after the first frame and takes what arrived
    meanwhile: frames sent 20 ms apart come out as one chunk, in order; without it, the
    first frame leaves alone (nothing else had arrived)."""
    from cvstream.blocks.zmq_io import ZmqSource
    port = free_port()
    sock = _push(port)
    chunks = {}
    for gather in (0.0, 0.3):
        rx = ZmqSource(address=f"tcp://127.0.0.1:{port}", pattern="pull", gather=gather)
        rx.start()
        try:
            time.sleep(0.2)  # connected

            def send():
                for k in range(4):
                    sock.send(np.full(100, k, np.complex64).tobytes())
                    time.sleep(0.02)
            sender = threading.Thread(target=send)
            sender.start()
            got, deadline = [], time.monotonic() + 10
            while sum(len(x) for x in got) < 400 and time.monotonic() < deadline:
                x = rx.work()
                if x is not None:
                    got.append(x.real.astype(int))
            sender.join()
        finally:
            rx.stop()
        chunks[gather] = got
    sock.close()
    assert [len(x) for x in chunks[0.3]] == [400]
    assert chunks[0.3][0].tolist() == [k for k in range(4) for _ in range(100)]
    assert len(chunks[0.0][0]) == 100 and len(chunks[0.0]) > 1


def test_restarted_publisher_is_picked_up(graph_file, tmp_path):
    port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: sub,
           idle_timeout: 2}}
      snk: {{type: npy_sink, path: {tmp_path / 'rx.npy'}}}
    connections: [rx -> snk]
    """)
    proc = start(path)
    for round_ in range(2):
        pub = zmq.Context.instance().socket(zmq.XPUB)  # an XPUB sees the subscription arrive
        pub.bind(f"tcp://127.0.0.1:{port}")
        assert pub.poll(30000), "the subscriber did not (re)connect"
        assert pub.recv() == b"\x01"  # subscribe to everything
        pub.send(np.full(5, round_ + 1, np.complex64).tobytes())
        time.sleep(0.2)
        pub.close(linger=1000)
        time.sleep(0.3)
    assert proc.wait(30) == 0, proc.stderr.read()
    np.testing.assert_array_equal(np.load(tmp_path / "rx.npy"), [1] * 5 + [2] * 5)


def test_pub_drop_mode_counts_drops(graph_file, tmp_path):
    port = free_port()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")  # connected, never reads
    path = graph_file(f"""
    blocks:
      src: {{type: signal_source, items: 20000000, chunk: 65536}}
      pace: {{type: throttle, rate: 20e6}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: pub, hwm: 2,
           drop: true}}
    connections: [src -> pace, pace -> tx]
    """)
    stats = tmp_path / "s.json"
    res = run_cli("run", str(path), "--stats-json", str(stats))
    sub.close(0)
    assert res.returncode == 0, res.stderr
    dropped = json.loads(stats.read_text())["blocks"]["tx"]["counters"]["dropped_items"]
    assert 0 < dropped < 20000000


def test_live_source_drop_policy_counts(graph_file, tmp_path):
    port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
           overflow: drop, idle_timeout: 1.5, coalesce: 8000}}
      slow: {{type: throttle, rate: 1000}}
      snk: {{type: null_sink}}
    connections:
      - rx -> slow
      - {{src: slow, dst: snk}}
      # buffer sized to hold only 1000 items between rx and the throttle
    """)
    text = path.read_text().replace("- rx -> slow", "- {src: rx, dst: slow, buffer: 1000}")
    path.write_text(text)
    stats = tmp_path / "s.json"
    proc = start(path, "--stats-json", str(stats))
    sock = _push(port)
    for _ in range(20):
        sock.send(np.zeros(1000, np.complex64).tobytes())
    assert proc.wait(60) == 0, proc.stderr.read()
    sock.close()
    report = json.loads(stats.read_text())
    rx = report["blocks"]["rx"]
    dropped = rx["counters"]["dropped_items"]
    assert rx["items_out"] == 20000  # produced = delivered + dropped, nothing silent
    assert dropped > 0
    assert report["blocks"]["slow"]["items_in"] == 20000 - dropped


def test_messages_over_zmq_as_json_and_pmt(graph_file, tmp_path):
    port = free_port()
    sub = zmq.Context.instance().socket(zmq.PULL)
    sub.connect(f"tcp://127.0.0.1:{port}")
    # a JSON message source (from a PUSH socket) -> PMT message sink
    in_port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_msg_source, address: "tcp://127.0.0.1:{in_port}", pattern: pull,
           idle_timeout: 1.5}}
      tx: {{type: zmq_msg_sink, address: "tcp://127.0.0.1:{port}", pattern: push,
           format: pmt}}
    connections: [rx -> tx]
    """)
    proc = start(path)
    push = _push(in_port)
    push.send(json.dumps({"label": "qpsk", "freq": 1.5e6, "n": 3}).encode())
    push.send(b"{not json")
    assert proc.wait(30) == 0, proc.stderr.read()
    assert sub.poll(2000)
    msg = pmt.deserialize(sub.recv())
    assert msg == {"label": "qpsk", "freq": 1.5e6, "n": 3}
    sub.close(0)
    push.close(0)


def test_memory_is_bounded_in_bytes_against_a_peer_sending_maximal_frames():
    """A peer floods a slow receiver with frames of exactly max_frame bytes (and some
    larger): the receiver's memory grows by at most the documented bound, hwm x max_frame
    queued in ZeroMQ plus the runtime buffer and one chunk in flight (slack for the
    kernel's socket buffers), not by what the peer sends (30 x 8 MiB here; with hwm 64 and
    max_frame 64 MiB, as before the bound, the same flood grew it by ~310 MB:
    `python bench/zmq_flood.py`)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from zmq_flood import FRAME, flood
    grew, bound, sent, status = flood(FRAME, 4)
    assert status == 0 and sent == 30
    assert grew < bound + 24, (grew, bound)


def test_a_bound_source_admits_max_peers_connections(graph_file, tmp_path):
    """Four peers connect to a bound source that admits two: the other two are refused
    (counted) and their frames never reach memory; the socket's bound is max_peers x hwm x
    max_frame however many connect."""
    port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull, bind: true,
           max_peers: 2, idle_timeout: 1.5}}
      snk: {{type: npy_sink, path: {tmp_path / 'rx.npy'}}}
    connections: [rx -> snk]
    """)
    stats = tmp_path / "s.json"
    proc = start(path, "--stats-json", str(stats))
    listening(port)   # bound before the first peer connects, or a retry reorders them
    peers = []
    for k in range(4):
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        peers.append(sock)
        time.sleep(0.2)  # in order: the first two get in
    for _ in range(5):
        for k, sock in enumerate(peers):
            try:
                sock.send(np.full(10, k, np.complex64).tobytes(), zmq.NOBLOCK)
            except zmq.Again:
                pass
        time.sleep(0.05)
    assert proc.wait(30) == 0, proc.stderr.read()
    for sock in peers:
        sock.close(0)
    got = np.load(tmp_path / "rx.npy").real.astype(int)
    assert set(got.tolist()) == {0, 1} and len(got) == 100
    counters = json.loads(stats.read_text())["blocks"]["rx"]["counters"]
    assert counters["refused_peers"] >= 2


def test_a_pass_tags_mismatch_is_named_in_the_log(graph_file, tmp_path):
    """Tagged frames into a raw receiver: dropped, counted, and the log says what to set."""
    port = free_port()
    proc, stats = _receiver(graph_file, tmp_path, port)
    sock = _push(port)
    sock.send(encode_header(0, [Tag(0, "rx_rate", 1e6)]) + np.zeros(9, np.complex64).tobytes())
    assert proc.wait(30) == 0
    sock.close()
    assert "the sender seems to use pass_tags: true" in proc.stderr.read()
    assert json.loads(stats.read_text())["blocks"]["rx"]["counters"] == {"malformed": 1}


def test_curve_encrypts_and_admits_only_known_client_keys(graph_file, tmp_path):
    """A CURVE server (zmq_sink) with a directory of client certificates: the known client
    gets every sample; a client with another key is refused by the ZAP handler and counted
    (refused_keys); `cvstream keys new` makes the certificates."""
    for name, folder in (("server", "server"), ("alice", "alice"), ("mallory", "mallory")):
        done = run_cli("keys", "new", name, "--dir", str(tmp_path / folder))
        assert done.returncode == 0, done.stderr
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "alice.key").write_bytes((tmp_path / "alice/alice.key").read_bytes())
    again = run_cli("keys", "new", "alice", "--dir", str(tmp_path / "alice"))
    assert again.returncode == 2 and "exists; not overwritten" in again.stderr
    (tmp_path / "a_file").write_text("")
    nowhere = run_cli("keys", "new", "bob", "--dir", str(tmp_path / "a_file" / "sub"))
    assert nowhere.returncode == 2 and nowhere.stderr.startswith(
        "cvstream: cannot write certificates to ") and "Traceback" not in nowhere.stderr
    n = 400_000
    data = np.random.default_rng(3).standard_normal(2 * n, dtype=np.float32).view(np.complex64)
    data.tofile(tmp_path / "in.cf32")
    port = free_port()

    def receiver(name):
        path = graph_file(f"""
        blocks:
          rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
               idle_timeout: 3, curve_key: "{tmp_path / name / (name + '.key_secret')}",
               curve_server: "{tmp_path / 'server/server.key'}"}}
          snk: {{type: file_sink, path: {tmp_path / (name + '.cf32')}}}
        connections: [rx -> snk]
        """, name=f"{name}.yml")
        return start(path)

    tx = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {tmp_path / 'in.cf32'}, chunk: 4096}}
      tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push,
           curve_key: "{tmp_path / 'server/server.key_secret'}",
           curve_clients: "{tmp_path / 'clients'}"}}
    connections: [src -> tx]
    """, name="tx.yml")
    stats = tmp_path / "tx.json"
    sender = start(tx, "--stats-json", str(stats))
    listening(port)
    # mallory knocks (again and again) until its idle_timeout; the sender waits for a peer
    mallory = receiver("mallory")
    assert mallory.wait(120) == 0, mallory.stderr.read()
    alice = receiver("alice")
    assert sender.wait(120) == 0, sender.stderr.read()
    assert alice.wait(120) == 0, alice.stderr.read()
    got = np.fromfile(tmp_path / "alice.cf32", np.complex64)
    assert got.tobytes() == data.tobytes()
    assert np.fromfile(tmp_path / "mallory.cf32", np.complex64).size == 0
    counters = json.loads(stats.read_text())["blocks"]["tx"]["counters"]
    assert counters.get("refused_keys", 0) >= 1


def test_curve_parameters_are_checked_with_one_line(graph_file, tmp_path):
    run_cli("keys", "new", "me", "--dir", str(tmp_path))

    def validate(curve: str):
        path = graph_file(f"""
        blocks:
          src: {{type: signal_source, items: 10}}
          tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{free_port()}", {curve}}}
        connections: [src -> tx]
        """)
        return run_cli("validate", str(path))

    res = validate(f'curve_server: "{tmp_path / "me.key"}"')
    assert res.returncode == 2
    assert "parameter 'curve_key': CURVE needs this end's secret certificate" in res.stderr
    res = validate(f'curve_key: "{tmp_path / "me.key"}"')
    assert res.returncode == 2 and "is a public certificate" in res.stderr
    assert res.stderr.count("\n") == 1


def test_binding_beyond_loopback_without_curve_warns(graph_file):
    path = graph_file(f"""
    blocks:
      src: {{type: signal_source, items: 1000}}
      tx: {{type: zmq_sink, address: "tcp://0.0.0.0:{free_port()}", pattern: pub}}
    connections: [src -> tx]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    assert "binds tcp://0.0.0.0:" in res.stderr and "without CURVE" in res.stderr
