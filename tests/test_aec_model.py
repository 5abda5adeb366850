"""The learned echo canceller: training path, streaming = offline, file alignment, bad input."""
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from cvstream.models.aec.speech import espeak_available

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not espeak_available() and os.environ.get("CI") != "true",
                                reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from cvstream.models.aec import network
    from cvstream.models.export import export_model
    model = network.train(steps=3, scenes=2, batch=2, frames=50)
    path = str(tmp_path_factory.mktemp("aec") / "tiny_aec.onnx")
    report = export_model(network.streaming(model), network.contract(model), path)
    assert report.max_abs_error <= 1e-4
    return path


def test_streaming_equals_offline_and_keeps_length(tiny_model):
    from cvstream.blocks.aec import EchoCanceller
    rng = np.random.default_rng(0)
    mic = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    ref = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    whole = EchoCanceller(model=tiny_model, compensate_delay=True)
    a = np.concatenate([whole.process(mic, ref), whole.flush()])
    chunked = EchoCanceller(model=tiny_model, compensate_delay=True)
    parts = [chunked.process(mic[i:i + 333], ref[i:i + 333]) for i in range(0, 16000, 333)]
    b = np.concatenate(parts + [chunked.flush()])
    assert len(a) == len(b) == 16000
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_aggressiveness_reaches_the_network(tiny_model):
    from cvstream.blocks.aec import EchoCanceller
    from cvstream.contract import read_contract
    assert [p.name for p in read_contract(tiny_model).inputs][4:] == ["aggressiveness"]
    rng = np.random.default_rng(3)
    mic = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    ref = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    outs = [EchoCanceller(model=tiny_model, aggressiveness=a, single_talk=a).process(mic, ref)
            for a in (0.0, 1.0)]
    assert np.all(np.isfinite(outs[0])) and not np.allclose(outs[0], outs[1])


def test_aggressiveness_curve_and_its_plot(tiny_model, tmp_path):
    from cvstream.models.aec import evaluate as ev
    curve = ev.aggressiveness_curve(tiny_model, scenes_per_scenario=1, levels=(0.0, 1.0))
    assert list(curve) == [0.0, 1.0]
    for m in curve.values():
        assert np.isfinite(m["fst"]["erle_db"]) and 1.0 <= m["dt"]["pesq_wb"] <= 4.6
    assert ev.format_aggressiveness(curve).splitlines()[2].startswith("0.00 | ")
    flat = ev.aggressiveness_curve(tiny_model, scenes_per_scenario=1, levels=(1.0,),
                                   boost=False)
    for scenario in ("fst", "dt"):              # at 1 the boost has nowhere to go
        assert ({k: v for k, v in flat[1.0][scenario].items() if k != "rtf"}
                == {k: v for k, v in curve[1.0][scenario].items() if k != "rtf"})
    table = ev.evaluate({"microphone (no AEC)": ev.passthrough}, 1, scenarios=("fst", "dt"))
    png = ev.plot_aggressiveness(curve, table, str(tmp_path / "trade.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_samples_never_crash(tiny_model):
    from cvstream.blocks.aec import EchoCanceller
    mic = np.zeros(4000, np.float32)
    mic[100:200] = np.nan
    mic[300] = np.inf
    mic[400:410] = 5.0
    block = EchoCanceller(model=tiny_model)
    out = np.concatenate([block.process(mic, np.zeros_like(mic)), block.flush()])
    assert len(out) == 4000 and np.all(np.isfinite(out))
    assert block.counters["bad_samples"] == 101 and block.counters["clipped"] == 10


def test_files_graph_alignment_and_rate_refusal(tiny_model, tmp_path):
    from pathlib import Path
    graph = Path(__file__).parent.parent / "graphs" / "aec_files.yml"
    rng = np.random.default_rng(1)
    sf.write(tmp_path / "mic.wav", 0.1 * rng.standard_normal(12345), 16000)
    sf.write(tmp_path / "ref.wav", 0.1 * rng.standard_normal(12000), 16000)
    res = run_cli("run", str(graph), "--set", f"mic={tmp_path / 'mic.wav'}",
                  "--set", f"ref={tmp_path / 'ref.wav'}",
                  "--set", f"output={tmp_path / 'out.wav'}", "--set", f"aec.model={tiny_model}")
    assert res.returncode == 0, res.stderr
    out, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and len(out) == 12000  # the shorter input ends the stream
    sf.write(tmp_path / "mic8k.wav", np.zeros(800), 8000)
    res = run_cli("validate", str(graph), "--set", f"mic={tmp_path / 'mic8k.wav'}",
                  "--set", f"ref={tmp_path / 'ref.wav'}", "--set", f"aec.model={tiny_model}")
    assert res.returncode == 2 and "resample first" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("validate", str(graph), "--set", f"mic={tmp_path / 'mic.wav'}",
                  "--set", f"ref={tmp_path / 'ref.wav'}", "--set", f"aec.model={tiny_model}",
                  "--set", "aggressiveness=1.5")
    assert res.returncode == 2 and "aggressiveness" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_int16_pcm_over_zeromq(tiny_model, graph_file):
    """mic and ref as raw int16 PCM frames over ZeroMQ, cleaned float32 frames back."""
    import subprocess

    import zmq

    from conftest import cvstream_cmd, free_port
    p_mic, p_ref, p_out = free_port(), free_port(), free_port()
    graph = graph_file(f"""
    blocks:
      mic: {{type: zmq_source, address: "tcp://127.0.0.1:{p_mic}", pattern: pull,
            dtype: int16, rate: 16000, idle_timeout: 3}}
      ref: {{type: zmq_source, address: "tcp://127.0.0.1:{p_ref}", pattern: pull,
            dtype: int16, rate: 16000, idle_timeout: 3}}
      mic_f: {{type: convert, to: f32}}
      ref_f: {{type: convert, to: f32}}
      aec: {{type: aec, model: {tiny_model}}}
      out: {{type: zmq_sink, address: "tcp://127.0.0.1:{p_out}", pattern: push}}
    connections: [mic -> mic_f, ref -> ref_f, mic_f -> aec.mic, ref_f -> aec.ref, aec -> out]
    """)
    ctx = zmq.Context.instance()
    mic, ref, out = ctx.socket(zmq.PUSH), ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    mic.bind(f"tcp://127.0.0.1:{p_mic}")
    ref.bind(f"tcp://127.0.0.1:{p_ref}")
    out.connect(f"tcp://127.0.0.1:{p_out}")
    proc = subprocess.Popen(cvstream_cmd("run", str(graph)), stderr=subprocess.PIPE, text=True)
    try:
        pcm = (np.random.default_rng(2).standard_normal(160 * 50) * 1000).astype(np.int16)
        for k in range(50):
            mic.send(pcm[k * 160:(k + 1) * 160].tobytes())
            ref.send(np.zeros(160, np.int16).tobytes())
        assert proc.wait(60) == 0, proc.stderr.read()
        got = 0
        while out.poll(1000):
            got += len(np.frombuffer(out.recv(), np.float32))
        assert got == 160 * 50
    finally:
        for s in (mic, ref, out):
            s.close(0)
        if proc.poll() is None:
            proc.kill()


def test_shipped_model_contract_and_held_out_scenes():
    """The shipped canceller: its contract names the linear stage and carries the README's
    rows; on held-out scenes (not the evaluation's seed) it removes most of the echo in far
    end single talk, more at a higher aggressiveness, and passes near-end single talk
    nearly untouched."""
    from cvstream.contract import read_contract
    from cvstream.models import resolve_model
    from cvstream.models.aec import evaluate as ev
    from cvstream.models.aec.synth import scene
    path = resolve_model("builtin:aec_cv")
    c = read_contract(path)
    assert [p.name for p in c.inputs] == ["mic", "ref", "err", "echo", "aggressiveness"]
    linear = c.preprocess["echo_filter"]
    assert linear["kind"] == "pfdkf" and linear["max_delay"] >= 0.5
    assert (linear["partitions"] - 2) * 10 >= 250        # ms of echo path after the delay
    assert set(c.evaluation) == {"fst", "nst", "dt", "epc"}
    assert c.evaluation["fst"]["erle_db"] > 20 and c.evaluation["dt"]["pesq_wb"] > 1.1
    sig, _ = scene(np.random.default_rng([77, 0]), 4.0, "fst")
    gentle, hard = (ev.erle_db(sig["mic"], ev.network(path, a, a)(sig["mic"], sig["ref"]))
                    for a in (0.0, 1.0))
    assert 10 < gentle < hard - 3
    sig, _ = scene(np.random.default_rng([77, 1]), 4.0, "nst")
    target, est, lag = ev.aligned(sig["near"], ev.network(path)(sig["mic"], sig["ref"]))
    assert lag == 0
    # (this scene's microphone is 36 dB above its noise; the masks keep the speech at
    # better than 20 dB SI-SDR)
    assert ev.si_sdr_db(target, est) > 20


def test_single_talk_boost_levels():
    """The boost's level: the base level at first, the single-talk level once the output
    stays 40 dB under the microphone while the linear stage predicts an echo, the base
    again at once when near-end speech comes through, and never while no echo is
    predicted."""
    from cvstream.blocks.aec_control import SingleTalkBoost
    mic = np.full(161, 1 + 1j, np.complex64)
    boost = SingleTalkBoost(0.2, 1.0)
    assert boost.level() == pytest.approx(0.2)
    for _ in range(300):
        boost.update(mic, 0.5 * mic, 0.01 * mic)
    assert boost.level() == pytest.approx(1.0)
    boost.update(mic, 0.5 * mic, mic)                  # the near end talks
    assert boost.level() == pytest.approx(0.2)
    silent = SingleTalkBoost(0.2, 1.0)
    for _ in range(300):
        silent.update(mic, 1e-4 * mic, 0.01 * mic)     # echo estimate 80 dB down: none
    assert silent.level() == pytest.approx(0.2)


def test_linear_floor_weights():
    """The floor: all of it while the linear stage's error stays 1.5 dB or more under the
    microphone, gone within ~200 ms once the error is louder than the microphone (a changed
    echo path), and shrinking as the aggressiveness rises (none at 1)."""
    from cvstream.blocks.aec_control import LinearFloor
    mic = np.full((200, 161), 1 + 1j, np.complex64)
    none = np.zeros(200)
    floor = LinearFloor(0.1)
    assert floor.weights(mic, 0.5 * mic, none)[-1] == pytest.approx(0.1)   # 6 dB removed
    changed = floor.weights(mic, 1.2 * mic, none)
    assert changed[0] == pytest.approx(0.1) and np.all(changed[20:] == 0)
    assert np.all(np.diff(changed) <= 0)
    again = LinearFloor(0.1)
    again.weights(mic, 0.5 * mic, none)
    np.testing.assert_allclose(again.weights(mic[:3], 0.5 * mic[:3], np.array([0, 0.5, 1])),
                               [0.1, 0.05, 0.0])


def test_linear_floor_on_the_shipped_model():
    """Held-out double-talk scenes: keeping a tenth of the linear stage's error under the
    network's output raises PESQ-WB on every scene (by > 0.04 on average); in far-end
    single talk it costs less than 3 dB of ERLE."""
    from cvstream.models import resolve_model
    from cvstream.models.aec import evaluate as ev
    from cvstream.models.aec.synth import SCENARIOS, scene
    path = resolve_model("builtin:aec_cv")
    gains = []
    for k in range(4):
        sig, _ = scene(np.random.default_rng([79, SCENARIOS.index("dt"), k]), 6.0, "dt")
        pesq = [ev.pesq_wb(*ev.aligned(sig["near"], ev.network(path, linear_floor=f)(
            sig["mic"], sig["ref"]))[:2]) for f in (0.0, 0.1)]
        gains.append(pesq[1] - pesq[0])
    assert min(gains) > 0 and np.mean(gains) > 0.04
    erle = []
    for k in range(2):
        sig, _ = scene(np.random.default_rng([79, 0, k]), 6.0, "fst")
        erle.append([ev.erle_db(sig["mic"], ev.network(path, linear_floor=f)(
            sig["mic"], sig["ref"])) for f in (0.0, 0.1)])
    assert np.mean(np.subtract(*np.transpose(erle))) < 3


def test_single_talk_boost_on_the_shipped_model():
    """Held-out scenes: in far-end single talk the boost removes more echo than the base
    level alone, chunked processing equals whole with it engaged; in near-end single talk
    (no echo predicted) the output is the base level's, sample for sample."""
    from cvstream.blocks.aec import EchoCanceller
    from cvstream.models import resolve_model
    from cvstream.models.aec import evaluate as ev
    from cvstream.models.aec.synth import scene
    path = resolve_model("builtin:aec_cv")
    boosted, flat = [], []
    for k in range(4):
        sig, _ = scene(np.random.default_rng([79, 0, k]), 6.0, "fst")
        mic, ref = sig["mic"], sig["ref"]
        boosted.append(ev.erle_db(mic, ev.network(path)(mic, ref)))
        flat.append(ev.erle_db(mic, ev.network(path, 0.0, 0.0)(mic, ref)))
    assert np.mean(boosted) > np.mean(flat) + 3 and max(boosted) > 40
    assert min(np.subtract(boosted, flat)) > -0.5
    whole = ev.network(path)(mic, ref)
    chunked = EchoCanceller(model=path, compensate_delay=True)
    parts = [chunked.process(mic[i:i + 333], ref[i:i + 333]) for i in range(0, len(mic), 333)]
    np.testing.assert_allclose(np.concatenate(parts + [chunked.flush()]), whole, atol=1e-5)
    sig, _ = scene(np.random.default_rng([79, 1]), 4.0, "nst")
    np.testing.assert_array_equal(ev.network(path)(sig["mic"], sig["ref"]),
                                  ev.network(path, 0.0, 0.0)(sig["mic"], sig["ref"]))


def test_shipped_model_reconverges_after_an_echo_path_change():
    """The evaluation's echo-path-change scenes (8 x 12 s of far-end single talk, the room
    response changed half-way): the shipped canceller is back within 3 dB of its ERLE
    before the change within the issue's 1 s (the model before per-bin history took 1.4 s)
    and removes more than 18 dB in the last 2 s (WebRTC AEC3: 16.4)."""
    from cvstream.models import resolve_model
    from cvstream.models.aec import evaluate as ev
    c = ev.erle_curves({"aec": ev.network(resolve_model("builtin:aec_cv"))})["aec"]
    assert c["reconverge_s"] is not None and c["reconverge_s"] <= 1.0
    assert c["after_db"] > 18


@pytest.mark.parametrize("delay_ms", [5.0, 195.0, 450.0])
def test_shipped_model_handles_bulk_delays_across_the_range(delay_ms):
    """The same far-end scene with its echo 5, 195 and 450 ms behind the reference: the
    delay estimator puts the linear stage's partitions where the echo is."""
    from cvstream.models import resolve_model
    from cvstream.models.aec import evaluate as ev
    from cvstream.models.aec.synth import scene
    sig, info = scene(np.random.default_rng([78, 0]), 4.0, "fst", delay_ms=delay_ms)
    assert info.delay_ms == delay_ms
    cancel = ev.network(resolve_model("builtin:aec_cv"))
    assert ev.erle_db(sig["mic"], cancel(sig["mic"], sig["ref"])) > 15


def test_a_contract_with_a_bad_echo_filter_is_refused_in_one_line(tiny_model, tmp_path):
    import shutil

    from cvstream.blocks.aec import EchoCanceller
    from cvstream.contract import read_contract
    from cvstream.errors import CvstreamError
    from cvstream.models.export import rewrite_contract
    path = str(tmp_path / "bad_filter.onnx")
    shutil.copy(tiny_model, path)
    c = read_contract(path)
    c.preprocess["echo_filter"] = {"taps": 32, "step": 0.3}
    rewrite_contract(path, c)
    with pytest.raises(CvstreamError, match="preprocess.echo_filter .* not a valid echo filter"):
        EchoCanceller(model=path)
