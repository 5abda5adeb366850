"""Spectrum segmentation speed: can the graphs keep up with 20 Msps (HackRF) and 56 Msps
(USRP B210) on this machine?

    python bench/spectrum_bench.py [--scenes 256] [--repeat N]

1. sigmf_source -> spectrum_segmenter -> sigmf_annotations (graphs/spectrum_sigmf.yml:
   metadata beside the recording, its samples not copied; chunks and batches of 64 tiles,
   the FFTs and the model in a worker process), on a synthesized 20 Msps recording, end to end
   through the runtime, the worker's start included: Msps, of this process's first graph
   and of three runs (this machine's speed moves from run to run), and (from a run on the
   recording's first half) the rate once started and what starting costs, and the CPU the
   graph used (its worker process's too) as cores busy at 20 Msps (the work itself: over
   2, no split across threads or processes could reach 20 Msps on two cores); again
   without its search for weak tones (``weak_tones: false``: what that search costs),
   without any search for tones in the cells the model leaves (``tones: false``) and with
   its fine view for narrow signals (``narrow: true``), once writing a copy of the samples
   with the annotations (``sigmf_sink``, as the graph did before stop 81: 160 MB/s more to
   write), once with the FFTs and the model on a worker thread (``worker: thread``, as the
   graph had it before stop 82) and once with the block's defaults (a worker thread,
   batches of 32 tiles). For the first and the worker thread, where the CPU went (from a
   second run: the thread that reads each thread's CPU would slow the first): the
   block's own thread (the detections), its worker process, its worker thread (which
   serves while the process starts) and the rest; the busier of the first two bounds the
   rate.
2. The same with cfar_detector.
3. zmq_source (pull, overflow: drop) -> spectrum_segmenter -> zmq_msg_sink, a second
   process streaming the recording paced at 20 Msps on the same 2 cores: does the receiver
   keep up (items dropped, counted)? As in graphs/spectrum_zmq.yml, the source gathers for
   4 ms after a frame arrives, the segmenter batches up to 64 tiles when behind (its FFTs
   and model in a worker process), and the source's buffer holds 0.5 s (10 M samples), so
   scheduling jitter is absorbed but a receiver slower than 20 Msps on average still
   drops; the peak backlog (the buffer's highest fill) shows how close it came. Once with
   a cvstream sender (sigmf_source -> throttle -> zmq_sink) and, where Debian's gnuradio
   is installed, with GNU Radio's (file_source -> throttle -> zeromq push_sink,
   `gr_flowgraphs.py file_tx`): once as it comes (a frame per scheduler call, a few
   thousand samples) and once with 64 K-sample frames (`set_output_multiple` on the
   throttle); then graphs/spectrum_zmq.yml itself (SUB, tag header; ``seg.rate`` set, as
   the recording carries no rx_rate tag) fed by GNU Radio's pub_sink with the tag header
   (`gr_flowgraphs.py file_pub`). Prints the CPU the receiver (its worker process
   included) and the sender used per second of stream: the two cores are shared, so what
   the sender costs the receiver cannot use. ``--repeat N`` streams N times per sender and
   sums up the drops (this machine's speed moves from run to run).
4. Where the segmenter's work goes, on the recording's first STAGE_SCENES scenes: its
   stateless part (``compute``: FFTs, noise floors, the model, the PSDs that settle the
   edges) and, of that, the model alone, then the detections (tracking, edges, tones,
   labels) on compute's results, each stage on one thread in turn, as cores busy at 20
   Msps; then compute on a second thread beside the detections, as the block runs them
   with ``worker: thread``:
   how much of the ideal overlap (the longer of the two) the two threads reach (both hold
   Python's GIL between their NumPy calls); then each in a process of its own at once (no
   shared GIL): the most a split across two processes could reach here, as the two
   stages slow each other through the shared memory and caches even so.
5. Latency: a tile's fill time plus one batch's processing (FFTs, model, detections), for
   batches of 1, 32 (the block's default) and 64 tiles (graphs/spectrum_sigmf.yml's), on
   the worker thread, and for 64 tiles in the worker process (the samples and results
   copied through shared memory).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cvstream.blocks import fft_rows
from cvstream.loader import load_graph, load_graph_text
from cvstream.models.spectrum.synth import SceneConfig, scene, write_sigmf
from cvstream.scheduler import Scheduler

from common import GR_PYTHON, free_port, gnuradio_available, scratch_dir

HERE = Path(__file__).parent
#: scenes of the recording that the split into stages runs on (0.84 s at 20 Msps)
STAGE_SCENES = 64


def recording(tmp: Path, scenes: int) -> str:
    parts = [scene(np.random.default_rng([11, k]), SceneConfig())[0] for k in range(scenes)]
    return write_sigmf(str(tmp / "bench"), np.concatenate(parts), [], 20e6, 2.45e9)


def sender_graph(tmp: Path, meta: str, port: int) -> Path:
    """A cvstream sender: the recording paced at 20 Msps into a ZeroMQ PUSH socket."""
    path = tmp / "tx.yml"
    path.write_text(f"""
blocks:
  rec: {{type: sigmf_source, path: {meta}, chunk: 65536}}
  pace: {{type: throttle, rate: 20e6}}
  tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push}}
connections: [rec -> pace, pace -> tx]
""")
    return path


def _children_cpu() -> float:
    """CPU seconds used by the finished child processes (the senders, the segmenter's
    worker processes)."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_graph(text: str, threads: dict | None = None) -> tuple[float, float, dict]:
    """Run a graph: its wall and CPU seconds (this process, all threads, and the worker
    processes it started and ended) and its stats;
    ``threads``, where given, gets each thread's CPU seconds over the run by its name
    (read by a thread of its own, whose CPU the process's figure then includes). The
    files written before it (the recording, the last run's output) are flushed to disk
    first, so that the kernel does not write them back on this run's cores."""
    os.sync()
    sched = Scheduler(load_graph_text(text))
    t0, cpu0, children0 = time.perf_counter(), time.process_time(), _children_cpu()
    with ThreadCpu() if threads is not None else contextlib.nullcontext() as per_thread:
        sched.run()
    wall, children = time.perf_counter() - t0, _children_cpu() - children0
    if threads is not None:
        threads.update(per_thread.seconds)
        threads["worker process"] = children
    return wall, time.process_time() - cpu0 + children, sched.snapshot()


def steady(meta: str, n: int, whole: float) -> None:
    """The graph of section 1 again on the recording's first half (``head``): its rate once
    started, from the half that the whole run adds, and what starting and draining cost
    (the worker process's start, the first batches on its thread, the last ones)."""
    half = n // 2
    secs, _, _ = run_graph(f"""
blocks:
  rec: {{type: sigmf_source, path: {meta}, chunk: 524288}}
  first: {{type: head, n: {half}}}
  det: {{type: spectrum_segmenter, max_batch: 64, worker: process}}
  out: {{type: sigmf_annotations, recording: {meta}, path: half.sigmf-meta}}
connections: [rec -> first, first -> det, det.detections -> out]
""")
    rate = (n - half) / max(whole - secs, 1e-9)
    print(f"  on the recording's first half: {secs:.2f} s against {whole:.2f} s for all of it: "
          f"{rate / 1e6:.1f} Msps once started ({rate / 20e6:.2f}x 20 Msps; one pair of runs, "
          f"a few % either way), {whole - n / rate:.2f} s to start and drain")


class ThreadCpu:
    """The CPU seconds each thread of this process used while it was open, by thread
    name (Linux's /proc/self/task, read every ``every`` s: a graph's threads end with it,
    so each keeps its last reading). Empty where /proc is not there."""

    def __init__(self, every: float = 0.05):
        self.every, self.seconds = every, {}
        self._done = threading.Event()
        self._last: dict = {}   # thread id -> (name, CPU seconds)

    @staticmethod
    def _cpu(tid: int) -> float | None:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _read(self) -> None:
        for t in threading.enumerate():
            if t is getattr(self, "_thread", None):
                continue   # not its own reading
            cpu = self._cpu(t.native_id) if t.native_id else None
            if cpu is not None:
                self._last[t.native_id] = (t.name, cpu)

    def _poll(self) -> None:
        while not self._done.wait(self.every):
            self._read()

    def __enter__(self):
        self._read()
        self._before = dict(self._last)
        self._thread = threading.Thread(target=self._poll, daemon=True, name="thread-cpu")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        for tid, (name, cpu) in self._last.items():
            used = cpu - self._before.get(tid, (name, 0.0))[1]
            if used > 0:
                self.seconds[name] = self.seconds.get(name, 0.0) + used
        return False


def print_threads(threads: dict, stream: float) -> None:
    """Where the segmenter's graph spent its CPU, as cores busy at 20 Msps: the block's
    own thread (the detections), its worker process (FFTs and the model, start-up
    included), its worker thread (the same, while the process starts) and the rest
    (source, sink, scheduler). The busier of the first two bounds the graph's rate."""
    det = threads.get("cvstream:det", 0.0)
    worker = sum(v for k, v in threads.items() if k.startswith("cvstream-det"))
    process = threads.get("worker process", 0.0)
    rest = sum(threads.values()) - det - worker - process
    print(f"  where, cores busy at 20 Msps: the detections {det / stream:.2f}, the worker "
          f"process {process / stream:.2f}, the worker thread {worker / stream:.2f}, the "
          f"rest (source, sink, scheduler) {rest / stream:.2f}")


def receiver(port: int, graph: bool):
    """zmq_source (PULL) -> spectrum_segmenter -> zmq_msg_sink; or, with ``graph``,
    graphs/spectrum_zmq.yml itself (SUB, tag header) at 20 Msps."""
    out_port = free_port()
    if graph:
        return load_graph(str(HERE.parent / "graphs" / "spectrum_zmq.yml"), {
            "iq": f"tcp://127.0.0.1:{port}", "detections": f"tcp://127.0.0.1:{out_port}",
            "sdr.idle_timeout": 5, "seg.rate": 20e6})
    return load_graph_text(f"""
blocks:
  sdr: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull, idle_timeout: 5,
        rate: 20e6, overflow: drop, gather: 0.004}}
  seg: {{type: spectrum_segmenter, max_batch: 64, worker: process}}
  out: {{type: zmq_msg_sink, address: "tcp://127.0.0.1:{out_port}", pattern: pub}}
connections: [{{src: sdr, dst: seg, buffer: 10485760}}, seg.detections -> out]
""")


def zmq_run(label: str, command, n: int, graph: bool = False) -> float:
    """Stream the recording from a sender process into the segmenter's ZeroMQ graph; prints
    the run and returns the percentage of samples dropped."""
    port = free_port()
    sched = Scheduler(receiver(port, graph))
    sched.start()
    cpu0, children0 = time.process_time(), _children_cpu()
    sender = subprocess.Popen(command(port))
    sched.wait()
    worker = _children_cpu() - children0   # the segmenter's worker process, ended with it
    try:  # a sender that outlived its receiver would block on a full socket
        sender.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sender.kill()
        sender.wait()
        print(f"{label} sender still running 10 s after the receiver ended: killed")
    rx_cores = (time.process_time() - cpu0 + worker) / (n / 20e6)
    tx_cores = (_children_cpu() - children0 - worker) / (n / 20e6)
    full = sched.snapshot()
    snap = full["blocks"]
    backlog = next(b["max_fill"] for name, b in full["buffers"].items() if name.startswith("sdr"))
    dropped = snap["sdr"]["counters"].get("dropped_items", 0)
    got = snap["sdr"]["items_out"]
    print(f"zmq from a {label} sender (paced at 20 Msps, same 2 cores) -> "
          f"spectrum_segmenter -> zmq_msg_sink: {got} of {n} samples arrived, "
          f"{dropped} dropped at a full buffer ({100 * dropped / max(1, got):.2f} %), "
          f"{snap['seg']['messages_out']} detections; peak backlog {backlog / 20e3:.0f} ms; "
          f"CPU per second of stream: receiver {rx_cores:.2f} cores, sender {tx_cores:.2f} "
          f"(start-up included)")
    return 100 * dropped / max(1, got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=256, help="262144-sample scenes recorded")
    ap.add_argument("--repeat", type=int, default=1, help="ZeroMQ runs per sender")
    args = ap.parse_args()
    tmp = scratch_dir()
    meta = recording(tmp, args.scenes)
    n = args.scenes * 262144
    print(f"recording: {n} samples ({n / 20e6:.2f} s at 20 Msps); the segmenter's FFTs: "
          f"{fft_rows.backend()} (pocketfft without the fftw extra or with "
          f"CVSTREAM_FFT=pocketfft)")
    annotate = f"{{type: sigmf_annotations, recording: {meta}, path: out.sigmf-meta}}"
    copy = f"{{type: sigmf_sink, path: {tmp / 'copy.sigmf-meta'}}}"
    # as graphs/spectrum_sigmf.yml has it
    graph_seg = "spectrum_segmenter, max_batch: 64, worker: process"
    on_thread = "spectrum_segmenter, max_batch: 64"
    for det, extra, sink in (
            (graph_seg, "", annotate), (graph_seg, "", copy),
            (graph_seg, "weak_tones: false", annotate), (graph_seg, "tones: false", annotate),
            (graph_seg, "narrow: true", annotate), (on_thread, "worker: thread", annotate),
            ("spectrum_segmenter", "max_batch: 32", annotate), ("cfar_detector", "", annotate)):
        samples = "rec -> out, det.detections -> out.annotations" if sink is copy else \
            "det.detections -> out"
        text = f"""
blocks:
  rec: {{type: sigmf_source, path: {meta}, chunk: 524288}}
  det: {{type: {det}, {extra}}}
  out: {sink}
connections: [rec -> det, {samples}]
"""
        secs, cpu, snap = run_graph(text)
        first = det == graph_seg and not extra and sink is annotate
        # the first graph twice more (this process's one-time imports, ONNX Runtime's and
        # the parts of scipy the detections use, done by then): the run-to-run spread
        again = sorted(run_graph(text)[0] for _ in range(2)) if first else []
        # where the CPU went, from a run of its own: the thread that reads each thread's
        # CPU takes the GIL twenty times a second, so the figures above come from runs
        # without it
        threads: dict | None = {} if extra in ("", "worker: thread") and \
            det != "cfar_detector" and sink is annotate else None
        if threads is not None:
            run_graph(text, threads)
        b = snap["blocks"]["det"]
        cores = cpu / (n / 20e6)   # CPU seconds per second of stream at 20 Msps
        name = det.split(",")[0] + (f" ({extra})" if extra else "")
        out = "sigmf_sink (samples copied too)" if sink is copy else "sigmf_annotations"
        print(f"sigmf_source -> {name:<19} -> {out}: {n / secs / 1e6:6.1f} Msps "
              f"({n / secs / 20e6:.2f}x 20 Msps, {n / secs / 56e6:.2f}x 56 Msps); work p50 "
              f"{b['work_p50_us'] / 1e3:.1f} ms p99 {b['work_p99_us'] / 1e3:.1f} ms, "
              f"{b['messages_out']} detections; its work: {cores:.2f} cores at 20 Msps"
              + (" (over the two here: no split of it reaches 20 Msps)" if cores > 2 else ""))
        if again:
            rates = sorted(n / t / 1e6 for t in (secs, *again))
            print(f"  three runs: {rates[0]:.1f} / {rates[1]:.1f} / {rates[2]:.1f} Msps "
                  f"(median {rates[1] / 20:.2f}x 20 Msps; each the worker process's start "
                  f"included)")
        if threads:
            print_threads(threads, n / 20e6)
        if first:
            steady(meta, n, sum(again) / len(again))
    # label -> (sender command for a port, whether graphs/spectrum_zmq.yml receives)
    senders = {"cvstream": (lambda port: [sys.executable, "-m", "cvstream", "run",
                                          str(sender_graph(tmp, meta, port))], False)}
    if gnuradio_available():
        def gr_sender(frame=None):
            return lambda port: [GR_PYTHON, str(HERE / "gr_flowgraphs.py"), "file_tx",
                                 meta.replace("-meta", "-data"), f"tcp://127.0.0.1:{port}",
                                 "20e6"] + ([str(frame)] if frame else [])
        senders["GNU Radio"] = (gr_sender(), False)
        senders["GNU Radio (64 K-sample frames)"] = (gr_sender(65536), False)
        senders["GNU Radio pub_sink (tag header, graphs/spectrum_zmq.yml)"] = (
            lambda port: [GR_PYTHON, str(HERE / "gr_flowgraphs.py"), "file_pub",
                          meta.replace("-meta", "-data"), f"tcp://127.0.0.1:{port}", "20e6"],
            True)
    for label, (command, graph) in senders.items():
        drops = [zmq_run(label, command, n, graph) for _ in range(args.repeat)]
        if args.repeat > 1:
            print(f"{label} sender, {args.repeat} runs: nothing dropped in "
                  f"{sum(d == 0 for d in drops)}; dropped % per run: "
                  + " ".join(f"{d:.2f}" for d in drops))
    stages(meta, min(args.scenes, STAGE_SCENES))
    in_two_processes(meta, min(args.scenes, STAGE_SCENES))
    latency(meta)


def latency(meta: str) -> None:
    """Print section 5 of the module's docstring."""
    from cvstream.blocks.segmenter import SpectrumSegmenter
    for worker, batches in (("thread", (1, 32, 64)), ("process", (64,))):
        seg = SpectrumSegmenter(max_batch=64, worker=worker)
        seg.start()
        seg._pool.ready(wait=60)   # started: its start is not a batch's latency
        x = np.fromfile(str(meta).replace("-meta", "-data"),
                        np.complex64)[:seg.decim * seg.max_batch]
        for batch in batches:
            part = x[:seg.decim * batch]
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                seg.work(part)
                seg.finish()  # wait for the model and the detections of this batch
                times.append(time.perf_counter() - t0)
            p50, p99 = np.percentile(times, [50, 99]) * 1e3
            print(f"latency, batches of {batch:>2} tiles on the worker {worker}: "
                  f"{part.size / 20e6 * 1e3:.2f} ms to fill at 20 Msps + processing p50 "
                  f"{p50:.2f} ms, p99 {p99:.2f} ms")
        seg.stop()


def stages(meta: str, scenes: int, rounds: int = 3) -> None:
    """Print where the segmenter's work goes (section 4 of the module's docstring): each
    figure the least of ``rounds`` runs (this machine's speed moves from run to run)."""
    seg, batches, stream = _stage_setup(meta, scenes)
    inputs = [seg.spectra.prepare(b)[1] for b in batches]   # (companded)

    def cores(run, clock=time.process_time) -> float:   # seconds per second of stream
        t0 = clock()
        run()
        return (clock() - t0) / stream

    def detect(results: list) -> int:   # from a fresh start: the detections sent
        for result, b in zip(results, batches):
            seg.absorb(result, b)   # as replicas hand compute's results back
        seg.finish()
        return len(seg.take_messages())

    compute, model, detections, together, sent = [], [], [], [], set()
    for _ in range(rounds):
        seg.start()
        seg.take_messages()
        results: list = []
        compute.append(cores(lambda: results.extend(seg.compute(b) for b in batches)))
        model.append(cores(lambda: [seg._run_model(t) for t in inputs]))
        detections.append(cores(lambda: sent.add(detect(results))))
        seg.start()   # again beside compute on a second thread, as the block runs them
        worker = threading.Thread(target=lambda: [seg.compute(b) for b in batches])
        together.append(cores(lambda: (worker.start(), sent.add(detect(results)),
                                       worker.join()), time.perf_counter))
    c, m, d, wall = min(compute), min(model), min(detections), min(together)
    serial, best = c + d, max(c, d)
    print(f"segmenter's work, one stage at a time on one thread ({scenes} scenes, cores "
          f"busy at 20 Msps, least of {rounds} runs): FFTs, floors and PSDs {c - m:.2f}, "
          f"model {m:.2f}, detections {d:.2f} (sent: {' / '.join(map(str, sorted(sent)))}); "
          f"in all {serial:.2f}: {20 / serial:.1f} Msps on one core, {20 / best:.1f} at "
          f"best on two")
    print(f"compute on a second thread beside the detections: {20 / wall:.1f} Msps ("
          f"{wall:.2f} s a second of stream against {serial:.2f} on one thread and {best:.2f} "
          f"overlapped perfectly: {100 * (serial - wall) / max(serial - best, 1e-9):.0f} % "
          f"of the overlap reached)")


def _stage_setup(meta: str, scenes: int):
    """A started segmenter, warmed up by a first batch through both stages (lazy imports,
    FFT plans, the model's first run), the batches of the recording's first ``scenes``
    scenes and the seconds of stream they hold at 20 Msps."""
    from cvstream.blocks.segmenter import SpectrumSegmenter
    seg = SpectrumSegmenter(rate=20e6)
    x = np.fromfile(str(meta).replace("-meta", "-data"), np.complex64)[:scenes * 262144]
    step = seg.decim * seg.max_batch
    batches = [x[i:i + step] for i in range(0, len(x), step)]
    seg.start()
    seg.absorb(seg.compute(batches[0]), batches[0])
    seg.start()
    seg.take_messages()
    return seg, batches, len(x) / 20e6


def _stage_process(stage: str, meta: str, scenes: int, go, stop, queue) -> None:
    """One stage (``compute`` or ``detections``) in this process, from ``go`` until ``stop``
    (events), over the batches again and again: puts its wall seconds per second of stream
    it went through."""
    seg, batches, stream = _stage_setup(meta, scenes)
    results = [seg.compute(b) for b in batches] if stage == "detections" else None
    queue.put("ready")
    go.wait()
    t0, done = time.perf_counter(), 0
    while not stop.is_set():
        k = done % len(batches)
        if results is None:
            seg.compute(batches[k])
        else:
            if k == 0:
                seg.start()   # the recording again, from a fresh start
            seg.absorb(results[k], batches[k])
        done += 1
    queue.put((time.perf_counter() - t0) / (done * stream / len(batches)))


def in_two_processes(meta: str, scenes: int, seconds: float = 6.0) -> None:
    """Print section 4's last figure: compute and the detections each in a process of its
    own, both busy for the same ``seconds``."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    queues = {stage: ctx.Queue() for stage in ("compute", "detections")}
    procs = [ctx.Process(target=_stage_process, args=(stage, meta, scenes, go, stop, q))
             for stage, q in queues.items()]
    for proc in procs:
        proc.start()
    for q in queues.values():
        q.get()   # both set up
    go.set()
    time.sleep(seconds)
    stop.set()
    wall = {stage: q.get() for stage, q in queues.items()}
    for proc in procs:
        proc.join()
    worst = max(wall.values())
    print(f"compute and the detections each in a process of its own, both busy for "
          f"{seconds:.0f} s (no shared GIL): {wall['compute']:.2f} and "
          f"{wall['detections']:.2f} s a second of stream: {20 / worst:.1f} Msps at best for "
          f"a split across two processes (before any cost of moving the data between them)")

if __name__ == "__main__":
    main()
