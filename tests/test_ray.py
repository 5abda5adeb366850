"""``cvstream run --ray`` on a real three-node Ray cluster on this machine, every node and
link on 127.0.0.1: the spectrum graph split into an ``io`` fragment (source, sink) and a
``det`` fragment (the segmenter with two replicas) writes what the one-process run writes;
a replica killed mid-stream is restarted and its calls replayed; a peer with a key the link
does not admit is refused and counted."""
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest
import zmq

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep Ray on loopback (ray_run.py)
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from conftest import cvstream_cmd  # noqa: E402

GRAPH = """
variables: {out: out.sigmf-meta, scenes: 3}
fragments:
  io: {labels: {role: io}}
  det: {labels: {role: det}}
blocks:
  src: {type: spectrum_synth_source, rate: 20e6, scenes: "${scenes}", seed: 7,
        fragment: io}
  seg: {type: spectrum_segmenter, replicas: 2, fragment: det}
  out: {type: sigmf_sink, path: "${out}", fragment: io}
connections:
  - src -> seg
  - src -> out
  - seg.detections -> out.annotations
"""


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "labels": {"role": "io"}})
    for _ in range(2):
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1", labels={"role": "det"})
    c.wait_for_nodes()
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in _nodes(c.address))
    yield c
    ray.shutdown()
    c.shutdown()


def _nodes(address):
    if not ray.is_initialized():
        ray.init(address=address, namespace="cvstream-test", logging_level="WARNING")
    return [n for n in ray.nodes() if n["Alive"]]


def one_process(tmp_path, scenes):
    graph = tmp_path / "graph.yml"
    graph.write_text(GRAPH)
    out = tmp_path / "one.sigmf-meta"
    r = subprocess.run(cvstream_cmd("run", str(graph), "--set", f"out={out}", "--set",
                                    f"scenes={scenes}"), capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    return graph, json.loads(out.read_text()), np.fromfile(tmp_path / "one.sigmf-data",
                                                            np.complex64)


def start_on_ray(cluster, graph, tmp_path, scenes, *extra):
    out = tmp_path / "ray.sigmf-meta"
    return subprocess.Popen(
        cvstream_cmd("run", str(graph), "--ray", cluster.address, "--set", f"out={out}",
                     "--set", f"scenes={scenes}", "--stats-json", str(tmp_path / "stats.json"),
                     *extra), stderr=subprocess.PIPE, text=True)


def finish(proc, tmp_path):
    err = proc.stderr.read()
    assert proc.wait(timeout=240) == 0, err
    meta = json.loads((tmp_path / "ray.sigmf-meta").read_text())
    data = np.fromfile(tmp_path / "ray.sigmf-data", np.complex64)
    stats = json.loads((tmp_path / "stats.json").read_text())["blocks"]
    return meta, data, stats, err


def test_split_graph_writes_what_one_process_writes_and_refuses_a_wrong_key(cluster, tmp_path):
    graph, ref_meta, ref_data = one_process(tmp_path, 3)
    key_folders = set(glob.glob(os.path.join(tempfile.gettempdir(), "cvstream-run-*")))
    proc = start_on_ray(cluster, graph, tmp_path, 3, "--link-curve", "on")
    # the first link's bound end is announced with its address and server key; a peer with
    # a key of its own (not the other fragment's) tries to take frames from it
    line = proc.stderr.readline()
    while "link0" not in line:
        assert line, "no link announced"
        line = proc.stderr.readline()
    m = re.search(r"bound (tcp://127\.0\.0\.1:\d+), '\w+' connects \(CURVE, server key "
                  r"(\S+)\)", line)
    assert m, line
    thief = zmq.Context.instance().socket(zmq.PULL if "src.out -> seg" in line else zmq.PUSH)
    public, secret = zmq.curve_keypair()
    thief.curve_publickey, thief.curve_secretkey = public, secret
    thief.curve_serverkey = m.group(2).encode()
    thief.setsockopt(zmq.LINGER, 0)
    thief.connect(m.group(1))
    meta, data, stats, err = finish(proc, tmp_path)
    thief.close()
    np.testing.assert_array_equal(data, ref_data)
    assert len(ref_meta["annotations"]) >= 5
    assert meta["annotations"] == ref_meta["annotations"]
    assert {b: s["fragment"] for b, s in stats.items() if b in ("src", "seg", "out")} == \
        {"src": "io", "seg": "det", "out": "io"}
    refused = sum(s["counters"].get("refused_keys", 0) for s in stats.values())
    assert refused >= 1, stats
    # the fragments' key folders (secret keys) are gone with the run
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "cvstream-run-*"))) <= \
        key_folders
    assert stats["seg"]["messages_out"] == len(ref_meta["annotations"])


def test_a_killed_replica_is_restarted_and_the_stream_goes_on(cluster, tmp_path):
    graph, ref_meta, ref_data = one_process(tmp_path, 64)
    proc = start_on_ray(cluster, graph, tmp_path, 64)
    killed = {}

    def kill_one():
        _nodes(cluster.address)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                     if ":seg:" in a["name"]]
            if len(names) == 2:
                break
            time.sleep(0.2)
        actor = ray.get_actor(sorted(names)[0], namespace="cvstream")
        killed["pid"] = ray.get(actor.pid.remote())
        time.sleep(0.3)  # mid-stream: the det fragment is the slow one, calls are in flight
        ray.kill(actor, no_restart=False)
        while time.monotonic() < deadline:  # Ray restarts it: a new process answers
            try:
                pid = ray.get(actor.pid.remote(), timeout=30)
                if pid != killed["pid"]:
                    killed["after"] = pid
                    return
            except ray.exceptions.RayActorError:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=kill_one)
    thread.start()
    meta, data, stats, err = finish(proc, tmp_path)
    thread.join(100)
    assert killed.get("after") and killed["after"] != killed["pid"]
    counters = stats["seg"]["counters"]
    assert counters.get("replica_failures", 0) >= 1, counters
    assert counters.get("replayed_calls", 0) >= 1, counters
    np.testing.assert_array_equal(data, ref_data)
    assert meta["annotations"] == ref_meta["annotations"]  # nothing lost, nothing twice


def test_a_fragment_that_cannot_be_placed_is_one_line(cluster, tmp_path, graph_file):
    path = graph_file("""
fragments: {big: {labels: {role: gpu_box}}}
blocks:
  src: {type: signal_source, rate: 1e6, fragment: big}
  h: {type: head, n: 1000, fragment: big}
  snk: {type: null_sink}
connections: [src -> h, h -> snk]
""")
    env = dict(os.environ, CVSTREAM_RAY_PLACE_TIMEOUT="5")
    r = subprocess.run(cvstream_cmd("run", str(path), "--ray", cluster.address),
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2
    # Ray's own processes forward their warnings (a disk nearly full) to stderr at any time
    ours = [line for line in r.stderr.strip().splitlines() if "(raylet)" not in line]
    assert "could not place" in ours[-1] and "gpu_box" in ours[-1]
    assert "Traceback" not in r.stderr


RESTART_ITEMS = 12_000_000  # 8 s at the pace: the kill lands mid-stream even on a loaded machine
RESTART = f"""
variables: {{out: spectra.npy}}
fragments:
  io: {{labels: {{role: io}}}}
  dsp: {{labels: {{role: det}}}}
blocks:
  src: {{type: signal_source, waveform: noise, rate: 1e6, items: {RESTART_ITEMS}, chunk: 8192,
        fragment: io}}
  pace: {{type: throttle, rate: 1.5e6, fragment: io}}
  spec: {{type: fft, size: 256, output: power, fragment: dsp}}
  out: {{type: npy_sink, path: "${{out}}", fragment: io}}
connections: [src -> pace, pace -> spec, spec -> out]
"""


def start_paced(cluster, tmp_path):
    """RESTART on the cluster: the process and the .npy file it writes."""
    graph = tmp_path / "paced.yml"
    graph.write_text(RESTART)
    out = tmp_path / "spectra.npy"
    proc = subprocess.Popen(
        cvstream_cmd("run", str(graph), "--ray", cluster.address, "--set", f"out={out}",
                     "--stats-json", str(tmp_path / "stats.json")),
        stderr=subprocess.PIPE, text=True)
    return proc, out


def kill_mid_stream(cluster, fragment: str) -> None:
    """Kill ``fragment``'s actor once its blocks stream (Ray restarts it if it may)."""
    _nodes(cluster.address)
    deadline = time.monotonic() + 120
    names = []
    while not names and time.monotonic() < deadline:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["name"].endswith(f":{fragment}")]
        time.sleep(0.2)
    actor = ray.get_actor(names[0], namespace="cvstream")
    while not ray.get(actor.poll.remote())["running"]:  # started: its blocks stream
        assert time.monotonic() < deadline, "the fragment never started"
        time.sleep(0.1)
    time.sleep(1.0)  # mid-stream: the source is paced to 8 s
    ray.kill(actor, no_restart=False)


def run_killing(cluster, tmp_path, fragment: str):
    """RESTART with ``fragment`` killed mid-stream: (exit code, stderr, the .npy path)."""
    proc, out = start_paced(cluster, tmp_path)
    kill_mid_stream(cluster, fragment)
    err = proc.stderr.read()
    return proc.wait(timeout=120), err, out


def key_folders() -> set:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "cvstream-run-*")))


def test_a_killed_stateless_fragment_is_restarted_and_its_loss_counted(cluster, tmp_path):
    before = key_folders()
    code, err, out = run_killing(cluster, tmp_path, "dsp")
    assert code == 0, err
    assert "fragment 'dsp' died; Ray restarted it" in err
    stats = json.loads((tmp_path / "stats.json").read_text())["blocks"]
    assert stats["spec"]["counters"]["fragment_restarts"] == 1
    frames = np.load(out)
    lost = sum(s["counters"].get("lost_items", 0) for s in stats.values()
               if s["fragment"] == "io")
    # every spectrum of the source's samples (the last one zero-padded) was written or
    # counted as lost: what the killed fragment held, nothing more (give or take the one
    # frame the restart straddles: the new fft's frames start at the first sample it gets)
    assert abs(len(frames) + lost - -(-RESTART_ITEMS // 256)) <= 1
    assert 0 <= lost < len(frames) // 4
    assert key_folders() <= before   # no key folder (secret key) left


def test_a_killed_fragment_holding_state_ends_the_run_in_one_line_and_leaves_no_key(
        cluster, tmp_path):
    """The io fragment holds the source's position and the sink's file: a restart would
    lose them, so its death ends the run (exit 1, one line, no traceback), and its key
    folder, which the killed process could not remove, is removed by the driver."""
    before = key_folders()
    code, err, _ = run_killing(cluster, tmp_path, "io")
    assert code == 1, err
    assert "fragment 'io' died (its process ended; it holds state" in err
    assert "Traceback" not in err
    assert key_folders() <= before


def test_ctrl_c_drains_every_fragment_and_closes_the_sinks(cluster, tmp_path):
    proc, out = start_paced(cluster, tmp_path)
    line = proc.stderr.readline()
    while "link1" not in line:  # deployed: both links announced
        assert line, "no link announced"
        line = proc.stderr.readline()
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert "draining every fragment" in err
    stats = json.loads((tmp_path / "stats.json").read_text())["blocks"]
    frames = np.load(out)  # the sink closed its file properly
    # the source stopped early; everything it sent went through both links
    sent = stats["src"]["items_out"]
    assert 0 < sent < 6_000_000
    assert len(frames) == -(-sent // 256)
    assert not any(s["counters"].get("lost_items") for s in stats.values())
