"""Export with a contract, the onnx_model block, streaming state, int8, `cvstream models`."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402
from cvstream.blocks.onnx_model import OnnxModel  # noqa: E402
from cvstream.contract import Contract, read_contract  # noqa: E402
from cvstream.errors import CvstreamError, ParamError  # noqa: E402
from cvstream.models import nn as cnn  # noqa: E402
from cvstream.models.export import (ExportError, export_model, fold_batchnorms,  # noqa: E402
                                     quantize_int8)
from cvstream.models.nn.streaming import StreamingCausalConv  # noqa: E402


class FIRNet(torch.nn.Module):
    """A complex FIR (causal conv) with a whitening batch norm: history 7, chunk 256."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.body = torch.nn.Sequential(cnn.FromInterleaved(),
                                        cnn.ComplexConv(1, 2, 8, causal=True),
                                        cnn.ComplexBatchNorm(2), cnn.ComplexConv(2, 1, 1),
                                        cnn.ToInterleaved())

    def forward(self, inp):
        return self.body(inp)[:, 7:]


def fir_contract(**kw):
    base = dict(task="test_fir", name="fir", chunk=256, history=7, sample_rate=1e6,
                inputs=[dict(name="inp")], outputs=[dict(name="out")])
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def fir_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("m") / "fir.onnx")
    net = FIRNet()
    net.train()
    for _ in range(3):  # give the batch norm real running statistics
        net(torch.randn(4, 263, 2))
    report = export_model(net.eval(), fir_contract(), path)
    assert report.max_abs_error <= 1e-4
    return path, fold_batchnorms(net)


def test_export_embeds_contract_and_matches_torch(fir_model):
    import onnx
    path, net = fir_model
    proto = onnx.load(path)
    assert proto.opset_import[0].version >= 17
    onnx.checker.check_model(proto)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    c = read_contract(path)
    assert (c.chunk, c.history, c.sample_rate, c.inputs[0].packing) == (256, 7, 1e6,
                                                                        "interleaved")


def test_one_dimensional_convolutions_run_as_two_dimensional_ones_with_the_same_output(
        tmp_path, fir_model):
    """conv1d_as_2d: strided, dilated, padded and grouped 1-D convolutions (and one without
    a bias) become 2-D ones over a height-1 image; ONNX Runtime gives the same output to
    float32 rounding. export_model rewrites a stateless model (the shipped segmenter), not
    a streaming one (the FIR, history 7: its chunks stay bit for bit a whole-signal run)."""
    import onnx
    import onnxruntime as ort
    from cvstream.models import resolve_model
    from cvstream.models.graph_passes import conv1d_as_2d

    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(4, 6, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv1d(6, 6, 3, padding=4, dilation=4, groups=2),
        torch.nn.Conv1d(6, 5, 5, stride=2, padding=(2,), bias=False)).eval()
    x = np.random.default_rng(0).standard_normal((3, 4, 64)).astype(np.float32)
    plain = str(tmp_path / "plain.onnx")
    torch.onnx.export(net, (torch.from_numpy(x),), plain, dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    proto = onnx.load(plain)
    assert conv1d_as_2d(proto) == 3
    onnx.checker.check_model(proto, full_check=True)
    kernels = {init.name: len(init.dims) for init in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 3 and all(kernels[n.input[1]] == 4 for n in convs)
    assert conv1d_as_2d(proto) == 0          # nothing left to rewrite
    rewritten = str(tmp_path / "rewritten.onnx")
    onnx.save(proto, rewritten)
    got = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    want = net(torch.from_numpy(x)).detach().numpy()
    assert got.shape == want.shape == (3, 5, 32)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)

    def kernel_ranks(path):
        model = onnx.load(path)
        ranks = {init.name: len(init.dims) for init in model.graph.initializer}
        return {ranks[n.input[1]] for n in model.graph.node if n.op_type == "Conv"}

    assert kernel_ranks(fir_model[0]) == {3}
    assert kernel_ranks(resolve_model("builtin:spectrum_segmenter")) == {4}
    stateless = str(tmp_path / "stateless.onnx")
    real = dict(dtype="float32", packing="none")   # items: the channels, of 64 values
    export_model(net, dict(task="test_conv", name="conv", chunk=4, sample_rate=1.0,
                           inputs=[dict(name="x", item_shape=[64], **real)],
                           outputs=[dict(name="y", item_shape=[32], **real)]), stateless)
    assert kernel_ranks(stateless) == {4}


def test_a_modrelu_of_fixed_length_exports_its_parts_as_planes_with_the_same_numbers(tmp_path):
    """ModReLU(length=n) trains on split parts and exports them as two planes of one view
    (a Reshape to a constant shape, a ReduceSum for |z|^2; no Slice, no Concat): ONNX
    Runtime gives torch's numbers, any batch. Without ``length`` the export splits and
    joins. The shipped segmenter's model holds the planes form (its logits the same as
    the split form's: the pooled GNU Radio predictions, README stop 88)."""
    import warnings

    import onnx
    import onnxruntime as ort
    from cvstream.models import resolve_model

    torch.manual_seed(4)
    x = np.random.default_rng(1).standard_normal((5, 6, 16)).astype(np.float32)

    def export(layer, name):
        with torch.no_grad():
            layer.bias.uniform_(-1.0, 0.5)   # some channels cut, some kept
        path = str(tmp_path / f"{name}.onnx")
        with warnings.catch_warnings():   # (the TorchScript exporter's, as export_model)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(layer, (torch.from_numpy(x[:2]),), path, dynamo=False,
                              opset_version=17, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]
        want = layer(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)
        assert (want == 0).any() and (want != 0).any()
        return {n.op_type for n in onnx.load(path).graph.node}

    planar = export(cnn.ModReLU(3, length=16), "planar")
    assert {"Reshape", "ReduceSum"} <= planar and not {"Slice", "Concat"} & planar
    assert {"Slice", "Concat"} <= export(cnn.ModReLU(3), "split")
    with pytest.raises(ValueError, match="1-D"):
        cnn.ModReLU(3, dims=2, length=16)
    shipped = {n.op_type for n in onnx.load(resolve_model("builtin:spectrum_segmenter"))
               .graph.node}
    assert "ReduceSum" in shipped and "Slice" not in shipped


def test_an_export_that_fails_its_check_never_replaces_the_model(tmp_path):
    """A failed ONNX Runtime-against-torch check leaves the file at ``path`` as it was and
    keeps the export (the trained weights) as <stem>.rejected.onnx; a passing export
    replaces the file and leaves nothing beside it."""
    path = tmp_path / "fir.onnx"
    path.write_bytes(b"the shipped model")
    with pytest.raises(ExportError, match="fir.onnx left as it was, the export kept as .*"
                                          "fir.rejected.onnx"):
        export_model(FIRNet().eval(), fir_contract(), str(path), rel_tol=-1.0)  # none passes
    assert path.read_bytes() == b"the shipped model"
    assert read_contract(str(tmp_path / "fir.rejected.onnx")).name == "fir"
    export_model(FIRNet().eval(), fir_contract(), str(path))
    assert read_contract(str(path)).name == "fir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fir.onnx", "fir.rejected.onnx"]


def test_the_relative_check_judges_each_item_and_allows_a_flip_in_one():
    """``rel_tol`` compares each item (the outputs' first axis) on its own: one item off by
    a voxel that float32 rounding moved across a threshold leaves the items' median small
    and its own error under FLIP_ALLOWANCE x rel_tol; an export off on every item is not."""
    from cvstream.models.export import FLIP_ALLOWANCE, item_relative_errors
    rng = np.random.default_rng(0)
    want = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    got = want * (1 + 1e-4)
    got[1, 2, 1, 3] += 0.03 * np.linalg.norm(want[1])   # one voxel flipped in item 1
    items = item_relative_errors(got, want)
    assert items.shape == (3,) and np.median(items) < 1e-2 < items[1] < FLIP_ALLOWANCE * 1e-2
    assert np.median(item_relative_errors(want * 1.05, want)) == pytest.approx(0.05, rel=1e-3)


def test_block_streams_equal_whole_signal(fir_model):
    path, net = fir_model
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(3000) + 1j * rng.standard_normal(3000)).astype(np.complex64)
    block = OnnxModel(model=path, max_batch=4)
    parts = [block.process(x[i:i + 700]) for i in range(0, 3000, 700)]
    parts.append(block.flush())
    y = np.concatenate([p for p in parts if p is not None])
    assert len(y) == 3000
    with torch.no_grad():
        padded = np.concatenate([np.zeros(7, np.complex64), x])
        whole = net(torch.from_numpy(padded.view(np.float32).reshape(1, -1, 2)))
    ref = np.ascontiguousarray(whole.numpy()).reshape(-1, 2).view(np.complex64)[:, 0]
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert block.counters.get("batched_calls", 0) > 0  # 700-sample pushes hold 2 chunks


class StatefulNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.inp = cnn.FromInterleaved()
        self.c1 = StreamingCausalConv(1, 4, 5, dilation=2)
        self.act = cnn.Cardioid()
        self.c2 = StreamingCausalConv(4, 1, 3, dilation=4)
        self.out = cnn.ToInterleaved()

    def forward(self, x, s1=None, s2=None):
        h = self.inp(x)
        if s1 is None:
            return self.out(self.c2(self.act(self.c1(h))))
        h, n1 = self.c1(h, s1)
        y, n2 = self.c2(self.act(h), s2)
        return self.out(y), n1, n2


def test_streaming_state_equals_whole_signal(tmp_path, graph_file):
    net = StatefulNet().eval()
    contract = dict(task="test_state", name="stateful", chunk=128, sample_rate="normalized",
                    inputs=[dict(name="inp")], outputs=[dict(name="out")],
                    states=[dict(input="s1", output="s1_next", shape=net.c1.cache_shape()),
                            dict(input="s2", output="s2_next", shape=net.c2.cache_shape())])
    path = str(tmp_path / "state.onnx")
    export_model(net, contract, path)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(1280) + 1j * rng.standard_normal(1280)).astype(np.complex64)
    np.save(tmp_path / "x.npy", x)
    graph = graph_file(f"""
    blocks:
      src: {{type: npy_source, path: {tmp_path / 'x.npy'}, chunk: 100}}
      net: {{type: onnx_model, model: {path}}}
      snk: {{type: npy_sink, path: {tmp_path / 'y.npy'}}}
      rec: {{type: sigmf_sink, path: {tmp_path / 'y.sigmf-meta'}}}
    connections: [src -> net, net -> snk, net -> rec]
    """)
    graph.write_text(graph.read_text().replace("type: npy_source,", "type: npy_source, "
                                               "rate: 3.2e6,"))
    res = run_cli("run", str(graph))
    assert res.returncode == 0, res.stderr
    # the source's rx_rate tag crossed the model and reached the recording's metadata
    meta = json.loads((tmp_path / "y.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == 3.2e6
    with torch.no_grad():
        whole = net(torch.from_numpy(x.view(np.float32).reshape(1, -1, 2)))
    ref = np.ascontiguousarray(whole.numpy()).reshape(-1, 2).view(np.complex64)[:, 0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-5)


def test_validate_refuses_mismatches(fir_model, graph_file):
    path, _ = fir_model
    cases = [
        ("src: {type: signal_source, dtype: float32}", "type mismatch"),
        ("src: {type: signal_source, rate: 2e6}", "runs at 2e+06 Hz but model 'fir' was "
                                                  "trained for 1e+06 Hz"),
        ("src: {type: zmq_source, address: 'tcp://127.0.0.1:9', shape: 4}",
         "item shape mismatch: upstream gives complex64[4], 'inp' takes complex64"),
    ]
    for src, words in cases:
        g = graph_file(f"""
        blocks:
          {src}
          net: {{type: onnx_model, model: {path}}}
          snk: {{type: null_sink}}
        connections: [src -> net, net -> snk]
        """)
        res = run_cli("validate", str(g))
        assert res.returncode == 2 and words in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    ok = graph_file(f"""
    blocks:
      src: {{type: signal_source, rate: 1e6}}
      net: {{type: onnx_model, model: {path}}}
      snk: {{type: null_sink}}
    connections: [src -> net, net.out -> snk]
    """)
    assert run_cli("validate", str(ok)).returncode == 0


def test_rate_tag_mismatch_stops_the_graph(fir_model, graph_file, tmp_path):
    path, _ = fir_model
    (tmp_path / "x.cf32").write_bytes(np.zeros(5000, np.complex64).tobytes())
    g = graph_file(f"""
    blocks:
      src: {{type: file_source, path: {tmp_path / 'x.cf32'}}}
      tag: {{type: signal_source, rate: 5e5, items: 10}}
      net: {{type: onnx_model, model: {path}}}
      snk: {{type: null_sink}}
      snk2: {{type: null_sink}}
    connections: [src -> net, net -> snk, tag -> snk2]
    """)
    assert run_cli("run", str(g)).returncode == 0  # no rate known anywhere: accepted
    with pytest.raises(CvstreamError, match="rx_rate tag says 500000 Hz"):
        block = OnnxModel(model=path)
        block.start()
        from cvstream.chunk import Tag
        block.input_tags = [Tag(0, "rx_rate", 5e5)]
        block.work(np.zeros(263, np.complex64))


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    (b"garbage", "not a loadable ONNX file"),
])
def test_missing_and_corrupt_models(tmp_path, content, words):
    path = tmp_path / "m.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ParamError) as err:
        OnnxModel(model=str(path))
    assert words in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ParamError, match="no shipped model 'nope'"):
        OnnxModel(model="builtin:nope")


def test_contract_rejects_nonsense():
    with pytest.raises(CvstreamError, match="packing"):
        Contract(**fir_contract(inputs=[dict(name="inp", packing="planar")]))
    with pytest.raises(CvstreamError, match="unknown fields"):
        Contract.from_json(json.dumps({**fir_contract(), "bogus": 1}))
    with pytest.raises(CvstreamError, match="history must be 0"):
        Contract(**fir_contract(states=[dict(input="a", output="b", shape=[1])]))


def test_int8_quantization_keeps_contract_and_accuracy(fir_model, tmp_path):
    path, _ = fir_model
    rng = np.random.default_rng(5)
    calib = [[rng.standard_normal((1, 263, 2)).astype(np.float32)] for _ in range(16)]
    q = quantize_int8(path, str(tmp_path / "fir.int8.onnx"), calib)
    assert read_contract(q).quantization == "int8-qdq"
    x = (rng.standard_normal(2560) + 1j * rng.standard_normal(2560)).astype(np.complex64)
    y32 = OnnxModel(model=path).process(x)
    y8 = OnnxModel(model=q).process(x)
    rel = np.linalg.norm(y8 - y32) / np.linalg.norm(y32)
    assert rel < 0.05


def test_deadline_misses_are_counted(fir_model):
    path, _ = fir_model
    block = OnnxModel(model=path, deadline=1e-9)
    block.process(np.zeros(1024, np.complex64))
    assert block.counters["deadline_misses"] == 4


USER_MODEL = '''
import torch
from cvstream.models.nn import ComplexConv, FromInterleaved, ToInterleaved, Cardioid

def build():
    torch.manual_seed(0)
    net = torch.nn.Sequential(FromInterleaved(), ComplexConv(1, 4, 3, causal=True), Cardioid(),
                              ComplexConv(4, 1, 3, causal=True), ToInterleaved())
    contract = dict(task="my_task", name="mine", chunk=512, history=4, sample_rate="normalized",
                    inputs=[dict(name="inp")], outputs=[dict(name="out")])
    return net, contract
'''


def test_models_cli_export_info_list(tmp_path):
    (tmp_path / "mymodel.py").write_text(USER_MODEL)
    out = tmp_path / "mine.onnx"
    calib = np.random.default_rng(0).standard_normal((8, 516, 2)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    res = run_cli("models", "export", f"{tmp_path / 'mymodel.py'}:build", "--out", str(out),
                  "--int8", str(tmp_path / "calib.npy"))
    assert res.returncode == 0, res.stderr
    assert "ONNX Runtime vs torch max |error|" in res.stdout
    lookahead = USER_MODEL.replace(", causal=True", "")
    (tmp_path / "ahead.py").write_text(lookahead)
    ahead = run_cli("models", "export", f"{tmp_path / 'ahead.py'}:build", "--out",
                    str(tmp_path / "ahead.onnx"))
    assert ahead.returncode == 2 and "the network looks 2 items ahead" in ahead.stderr
    info = run_cli("models", "info", str(out))
    assert info.returncode == 0 and "mine v1 (my_task, fp32)" in info.stdout
    listing = run_cli("models", "list", "--dir", str(tmp_path))
    assert "mine.int8.onnx" in listing.stdout and "int8-qdq" in listing.stdout
    assert "builtin:iq_denoiser" in listing.stdout
    bad = run_cli("models", "export", f"{tmp_path / 'mymodel.py'}:nope", "--out", str(out))
    assert bad.returncode == 2 and "has no function 'nope'" in bad.stderr


README_MODEL = '''
import torch
from cvstream.models.nn import ComplexConv, Cardioid, FromInterleaved, ToInterleaved

def build(history=16):
    torch.manual_seed(0)
    net = torch.nn.Sequential(FromInterleaved(), ComplexConv(1, 8, 9, causal=True),
                              Cardioid(), ComplexConv(8, 1, 9, causal=True), ToInterleaved())
    contract = dict(task="my_filter", name="mine", chunk=4096, history=history,
                    sample_rate=2.4e6, inputs=[dict(name="inp")], outputs=[dict(name="out")])
    return net, contract

def no_history():
    return build(0)
'''


def test_export_refuses_a_model_that_streams_wrong_and_names_the_history(tmp_path):
    (tmp_path / "mymodel.py").write_text(README_MODEL)
    out = tmp_path / "mine.onnx"
    res = run_cli("models", "export", f"{tmp_path / 'mymodel.py'}:no_history", "--out", str(out))
    assert res.returncode == 2
    assert "the network looks back 16 items, the contract's history is 0; set history: 16" \
        in res.stderr
    assert not out.exists()
    forced = run_cli("models", "export", f"{tmp_path / 'mymodel.py'}:no_history", "--out",
                     str(out), "--force")
    assert forced.returncode == 0 and "warning: streaming differs" in forced.stderr
    assert out.exists()


def test_readme_model_streams_like_the_whole_signal(tmp_path, graph_file):
    """The README's example with history 16: the network returns outputs for history + chunk
    items, the runtime keeps the chunk's; through a real graph it matches the network run
    once over the whole signal."""
    (tmp_path / "mymodel.py").write_text(README_MODEL)
    out = tmp_path / "mine.onnx"
    res = run_cli("models", "export", f"{tmp_path / 'mymodel.py'}:build", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "streaming (chunk by chunk in onnx_model) vs whole signal (ONNX Runtime): max " \
        "|diff| 0.00e+00 (bit for bit)" in res.stdout
    rng = np.random.default_rng(3)
    x = ((rng.standard_normal(30000) + 1j * rng.standard_normal(30000)) / np.sqrt(2)
         ).astype(np.complex64)
    np.save(tmp_path / "x.npy", x)
    graph = graph_file(f"""
    blocks:
      src: {{type: npy_source, path: "{tmp_path / 'x.npy'}", chunk: 1000, rate: 2.4e6}}
      net: {{type: onnx_model, model: "{out}"}}
      dst: {{type: npy_sink, path: "{tmp_path / 'y.npy'}"}}
    connections: [src -> net.inp, net.out -> dst]
    """)
    ran = run_cli("run", str(graph))
    assert ran.returncode == 0, ran.stderr
    y = np.load(tmp_path / "y.npy")
    import importlib.util
    spec = importlib.util.spec_from_file_location("mymodel", tmp_path / "mymodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net, _ = module.build()
    with torch.no_grad():
        whole = net(torch.from_numpy(x.view(np.float32).reshape(-1, 2))[None])[0].numpy()
    whole = np.ascontiguousarray(whole).view(np.complex64)[:, 0]
    assert len(y) == len(x)
    np.testing.assert_allclose(y, whole, rtol=0, atol=1e-5)
    assert np.abs(whole).mean() > 0.01  # a real output, not zeros


def _with_contract(src: str, dst, contract_json: str) -> str:
    """A copy of an exported model whose metadata holds ``contract_json``."""
    import onnx
    model = onnx.load(src)
    for prop in model.metadata_props:
        if prop.key == "cvstream.contract":
            prop.value = contract_json
    onnx.save(model, str(dst))
    return str(dst)


@pytest.mark.parametrize("change, words", [
    (dict(inputs=[dict(name=5)]), "tensor name 5 must be text"),
    (dict(chunk=10**12), "bytes (limit"),
    (dict(chunk=1e3), "chunk must be a whole number"),
    (dict(inputs=[dict(name="inp", item_shape=[3])]),
     "tensor 'inp' is ['batch', 263, 2] in the ONNX graph; the contract says ['batch', 263, "
     "3, 2]"),
    (dict(chunk=300), "the contract says ['batch', 307, 2]"),
    (dict(outputs=[dict(name="y")]), "names tensor 'y', which the ONNX graph lacks"),
])
def test_bad_contracts_are_refused_at_validation(fir_model, tmp_path, graph_file, change,
                                                 words):
    path = _with_contract(fir_model[0], tmp_path / "bad.onnx",
                          json.dumps({**Contract(**fir_contract()).__dict__, **change},
                                     default=lambda o: o.__dict__))
    graph = graph_file(f"""
    blocks:
      src: {{type: signal_source, rate: 1e6, items: 1000}}
      m: {{type: onnx_model, model: {path}}}
      snk: {{type: null_sink}}
    connections: [src -> m, m -> snk]
    """)
    res = run_cli("validate", str(graph))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and words in res.stderr, res.stderr


def test_a_session_leaves_out_the_graph_optimizers_it_is_told_to():
    """``make_session(disabled=...)``: the spectrum segmenter's session, without ONNX
    Runtime's blocked-channel layout (its reorders cost this few-channel model more than
    they save), computes what a session with none of the layout optimizations computes,
    to the bit."""
    import onnxruntime as ort

    from cvstream.blocks.onnx_model import make_session
    from cvstream.models import SHIPPED_DIR
    path = str(SHIPPED_DIR / "spectrum_segmenter.onnx")
    x = np.random.default_rng(3).normal(size=(4, 32, 256, 2)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    plain = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    lean = make_session(path, 1, ("NchwcTransformer",))
    assert np.array_equal(lean.run(None, {"frames": x})[0], plain.run(None, {"frames": x})[0])
