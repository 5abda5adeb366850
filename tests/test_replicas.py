"""Replicated blocks in one process, graph fragments as data, and ZeroMQ links that end
their stream: what ``cvstream run --ray`` is built from (tests/test_ray.py runs it)."""
import json
import subprocess

import numpy as np
import pytest

from cvstream import Graph, In, Sink, Source, Out
from cvstream.errors import EndOfStream, GraphError, GraphErrors
from cvstream.fragments import plan
from cvstream.loader import load_graph_text
from cvstream.scheduler import Scheduler
from cvstream.blocks.fft import FFT
from conftest import cvstream_cmd, free_port


class TaggedRamp(Source):
    """A ramp in uneven chunks with a tag every 1000 items. Ports: out. Example: test only."""

    out = Out("complex64")

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def start(self):
        self.pos, self.sizes = 0, [700, 3000, 1234, 5000, 77]

    def work(self):
        if self.pos >= self.n:
            raise EndOfStream
        k = min(self.sizes[self.pos % 5], self.n - self.pos)
        x = (np.arange(self.pos, self.pos + k) * (1 + 0.5j)).astype(np.complex64)
        for i in range(k):
            if (self.pos + i) % 1000 == 0:
                self.add_tag(i, "mark", self.pos + i)
        self.pos += k
        return x


class Keep(Sink):
    """Keep items and tags. Ports: in. Example: test only."""

    inp = In(None, None)

    def start(self):
        self.parts, self.tags = [], []

    def work(self, x):
        self.parts.append(np.array(x))
        self.tags.extend((t.offset, t.key, t.value) for t in self.input_tags)


def run_fft(replicas: int):
    g = Graph()
    g.add("src", TaggedRamp(40_000))
    g.add("fft", FFT(size=256, hop=64, output="power"), replicas=replicas)
    sink = g.add("out", Keep())
    g.connect("src", "fft")
    g.connect("fft", "out")
    Scheduler(g).run(timeout=60)
    return np.concatenate(sink.parts), sorted(sink.tags)


def test_replicated_fft_gives_the_one_copy_output_with_its_tags():
    one, tags_one = run_fft(1)
    three, tags_three = run_fft(3)
    assert one.shape == three.shape and len(one) > 500
    np.testing.assert_array_equal(one, three)
    assert len(tags_one) >= 30 and tags_three == tags_one


SEGMENT = """
variables: {n: 1, out: x.jsonl}
blocks:
  src: {type: spectrum_synth_source, rate: 20e6, scenes: 4, seed: 4}
  seg: {type: spectrum_segmenter, replicas: "${n}"}
  log: {type: message_sink, path: "${out}"}
connections: [src -> seg, seg.detections -> log]
"""


def test_replicated_segmenter_sends_the_same_detections(tmp_path):
    lines = {}
    for n in (1, 2):
        out = tmp_path / f"det{n}.jsonl"
        graph = load_graph_text(SEGMENT, "seg.yml", {"n": n, "out": str(out)})
        sched = Scheduler(graph)
        sched.run(timeout=120)
        lines[n] = out.read_text().splitlines()
        if n == 2:
            stats = sched.snapshot()["blocks"]["seg"]
            assert stats["messages_out"] == len(lines[2])
            assert stats["counters"].get("short_tracks", 0) > 0  # counted on the replicas
    assert len(lines[1]) >= 5
    assert lines[2] == lines[1]


def test_a_stateful_block_refuses_replicas_at_validation_with_its_line(graph_file):
    path = graph_file("""
blocks:
  src: {type: signal_source, rate: 1e6}
  aec: {type: nlms_aec,
        replicas: 2}
  sink: {type: null_sink}
connections: [src -> aec.mic, src -> aec.ref, aec -> sink]
""")
    with pytest.raises(GraphErrors) as err:
        load_graph_text(path.read_text(), str(path))
    text = str(err.value)
    assert f"{path}:4:" in text and "replicas: 2 needs a stateless block" in text
    assert "nlms_aec keeps state" in text


def test_replicas_must_be_a_small_count(graph_file):
    path = graph_file("blocks:\n  f: {type: fft, replicas: 0}\n")
    with pytest.raises(GraphErrors, match="'replicas' is a count from 1 to 64"):
        load_graph_text(path.read_text(), str(path))


SPLIT = """
fragments:
  io: {cpus: 1}
  det: {labels: {role: det}}
blocks:
  src: {type: spectrum_synth_source, rate: 20e6, scenes: 1, fragment: io}
  seg: {type: spectrum_segmenter, fragment: det, replicas: 2}
  out: {type: sigmf_sink, path: out.sigmf-meta, fragment: io}
  tap: {type: null_sink}
connections: [src -> seg, src -> out, src -> tap, seg.detections -> out.annotations]
"""


def test_plan_links_the_fragments_and_keeps_the_one_process_graph(tmp_path):
    graph = load_graph_text(SPLIT.replace("out.sigmf", f"{tmp_path}/out.sigmf"), "split.yml")
    graph.validate()
    p = plan(graph)
    assert p.fragments == {"io": ["src", "out"], "det": ["seg"], "main": ["tap"]}
    assert p.resources["det"] == {"labels": {"role": "det"}} and p.replicas == {"seg": 2}
    links = {(k.src, k.dst): k for k in p.links}
    assert set(links) == {("src.out", "seg.inp"), ("src.out", "tap.inp"),
                          ("seg.detections", "out.annotations")}
    stream = links[("src.out", "seg.inp")]
    assert not stream.message and stream.dtype == "complex64" and stream.rate == 20e6
    assert links[("seg.detections", "out.annotations")].message
    # io and det feed each other: whichever starts first binds both of their links
    first = p.order.index("io") < p.order.index("det")
    assert stream.binder == ("io" if first else "det")
    assert p.order.index("main") < p.order.index("io")  # a pure sink fragment starts first


def test_fragments_naming_no_block_are_an_error(graph_file):
    path = graph_file("fragments: {gpu_box: {gpus: 1}}\nblocks:\n  f: {type: null_sink}\n")
    graph = load_graph_text(path.read_text(), str(path))
    with pytest.raises(Exception, match="no block is in fragment"):
        plan(graph)


def test_fragment_resources_are_checked(graph_file):
    path = graph_file("fragments: {det: {cpus: -1}}\nblocks:\n  f: {type: null_sink}\n")
    with pytest.raises(GraphError, match=r":1: fragment 'det': 'cpus' must be a number"):
        load_graph_text(path.read_text(), str(path))


def test_an_eos_link_ends_the_receiving_graph_with_every_item_and_tag(graph_file, tmp_path):
    port = free_port()
    send = graph_file(f"""
blocks:
  src: {{type: spectrum_synth_source, rate: 2e6, scenes: 2, seed: 2}}
  tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push, pass_tags: true,
       eos: true}}
  ref: {{type: sigmf_sink, path: "{tmp_path}/ref.sigmf-meta"}}
connections: [src -> tx, src -> ref]
""", "send.yml")
    recv = graph_file(f"""
blocks:
  rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull, pass_tags: true,
       eos: true, rate: 2e6}}
  out: {{type: sigmf_sink, path: "{tmp_path}/got.sigmf-meta"}}
connections: [rx -> out]
""", "recv.yml")
    receiver = subprocess.Popen(cvstream_cmd("run", str(recv), "--stats-json",
                                             str(tmp_path / "rx.json")),
                                stderr=subprocess.PIPE, text=True)
    sender = subprocess.run(cvstream_cmd("run", str(send)), capture_output=True, text=True,
                            timeout=60)
    assert sender.returncode == 0, sender.stderr
    assert receiver.wait(timeout=30) == 0, receiver.stderr.read()  # ended by the end frame
    ref = np.fromfile(tmp_path / "ref.sigmf-data", np.complex64)
    got = np.fromfile(tmp_path / "got.sigmf-data", np.complex64)
    assert len(ref) > 100_000
    np.testing.assert_array_equal(got, ref)
    stats = json.loads((tmp_path / "rx.json").read_text())["blocks"]["rx"]
    assert not {"lost_items", "lost_at_start", "malformed", "empty_frames"} & \
        set(stats["counters"])
    got_meta = json.loads((tmp_path / "got.sigmf-meta").read_text())
    assert got_meta["global"]["core:sample_rate"] == 2e6
