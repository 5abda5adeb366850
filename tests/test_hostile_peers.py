"""A hostile or broken ZeroMQ peer never stops a graph: what it sends is decoded within
limits, dropped and counted by cause, and the stream goes on. Real sockets, real `cvstream
run` processes; the decoders are also fed random and mutated bytes (hypothesis)."""
import json
import struct
import subprocess
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cvstream_cmd, free_port
from cvstream import pmt
from cvstream.chunk import Tag
from cvstream.messages import MessageError, check_size, decode_json, dumps
from cvstream.zmq_wire import FrameError, decode_header, encode_header


def _run(path, stats):
    return subprocess.Popen(cvstream_cmd("run", str(path), "--stats-json", str(stats)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _push(port):
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.bind(f"tcp://127.0.0.1:{port}")
    time.sleep(0.5)
    return sock


def _dict_with_key(key: bytes, value: bytes) -> bytes:
    """A serialized PMT dict of one entry whose key is any serialized PMT."""
    return bytes([pmt.DICT, pmt.PAIR]) + key + value + bytes([pmt.NULL])


def _nested_vectors(depth: int) -> bytes:
    return struct.pack(">BI", pmt.VECTOR, 1) * depth + pmt.serialize(1)


def _message_graph(graph_file, tmp_path, fmt):
    port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_msg_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
           format: {fmt}, idle_timeout: 1.5}}
      log: {{type: message_sink, path: {tmp_path / 'msgs.jsonl'}}}
    connections: [rx -> log]
    """)
    return port, path, tmp_path / "stats.json"


def test_pmt_messages_with_any_key_or_shape_never_stop_the_graph(graph_file, tmp_path):
    port, path, stats = _message_graph(graph_file, tmp_path, "pmt")
    proc = _run(path, stats)
    sock = _push(port)
    sock.send(_dict_with_key(pmt.serialize([1, 2]), pmt.serialize(3)))       # list key
    sock.send(_dict_with_key(pmt.serialize({"a": 1}), pmt.serialize("v")))   # dict key
    sock.send(_nested_vectors(100))                                          # too deep
    sock.send(pmt.serialize([True] * 70000))                                 # too many items
    sock.send(b"\xee\x00")                                                   # not a PMT
    sock.send(b"")                                                           # empty
    sock.send(pmt.serialize({"label": "ok", "snr": 12.5}))
    assert proc.wait(30) == 0, proc.stderr.read()
    sock.close()
    lines = [json.loads(x) for x in (tmp_path / "msgs.jsonl").read_text().splitlines()]
    assert lines == [{"[1, 2]": 3}, {'[["a", 1]]': "v"}, {"label": "ok", "snr": 12.5}]
    counters = json.loads(stats.read_text())["blocks"]["rx"]["counters"]
    assert counters == {"too_deep": 1, "too_large": 1, "bad_pmt": 1, "empty_messages": 1}


def test_json_bombs_are_dropped_and_counted(graph_file, tmp_path):
    port, path, stats = _message_graph(graph_file, tmp_path, "json")
    proc = _run(path, stats)
    sock = _push(port)
    t0 = time.monotonic()
    sock.send(b"[" * 100000)                                  # RecursionError in json
    sock.send(b'{"a": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}")  # deeper than 32
    sock.send(json.dumps({"v": list(range(70000))}).encode())  # more than 65536 elements
    sock.send(b"\xff\xfe{")                                   # not UTF-8
    sock.send(b"1" * 5000)                                    # past Python's int digits
    sock.send(b'{"label": "ok", "freq": NaN}')
    assert proc.wait(30) == 0, proc.stderr.read()
    sock.close()
    assert time.monotonic() - t0 < 10
    lines = (tmp_path / "msgs.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"label": "ok", "freq": "nan"}]
    counters = json.loads(stats.read_text())["blocks"]["rx"]["counters"]
    assert counters == {"too_deep": 2, "too_large": 1, "bad_json": 2}
    err = proc.stderr.read()
    assert "dropped message" in err and "Traceback" not in err


def test_hostile_tags_do_not_stop_a_tagged_stream(graph_file, tmp_path):
    """Tags whose values are dicts with list keys, a 70000-element vector, and an rx_rate
    that is a string: the samples all arrive, the bad frame and the bad value are counted."""
    port = free_port()
    path = graph_file(f"""
    blocks:
      rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
           pass_tags: true, idle_timeout: 1.5}}
      rec: {{type: sigmf_sink, path: {tmp_path / 'rec.sigmf-meta'}}}
    connections: [rx -> rec]
    """)
    stats = tmp_path / "stats.json"
    proc = _run(path, stats)
    sock = _push(port)
    x = np.arange(8, dtype=np.complex64)
    odd = _dict_with_key(pmt.serialize([1, 2]), pmt.serialize({"k": [1.0]}))
    header = bytearray(encode_header(0, [Tag(0, "weird", 0), Tag(1, "rx_rate", "abc")]))
    # replace the first tag's value (int32 0) by the dict with a list key
    at = header.index(pmt.serialize(0), 27)
    header[at:at + 5] = odd
    sock.send(bytes(header) + x.tobytes())
    huge = encode_header(8, [Tag(8, "blob", [True] * 70000)])
    sock.send(huge + (x + 8).tobytes())                        # dropped: tag too large
    sock.send(encode_header(16, [Tag(16, "rx_rate", 2e6)]) + (x + 16).tobytes())
    assert proc.wait(30) == 0, proc.stderr.read()
    sock.close()
    data = np.fromfile(tmp_path / "rec.sigmf-data", dtype=np.complex64)
    np.testing.assert_array_equal(data.real, np.r_[0:8, 16:24])
    meta = json.loads((tmp_path / "rec.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == 2e6
    report = json.loads(stats.read_text())["blocks"]
    assert report["rx"]["counters"] == {"bad_pmt": 1, "lost_items": 8}
    assert report["rec"]["counters"] == {"bad_tag_values": 1}


# ---- the decoders on random and mutated bytes --------------------------------------------
PMT_VALUES = st.recursive(
    st.one_of(st.booleans(), st.none(), st.text(max_size=8),
              st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
              st.complex_numbers(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=12)


def _mutations():
    """Valid encodings with bytes flipped, cut, or repeated."""
    return st.tuples(PMT_VALUES, st.lists(st.tuples(st.integers(0, 10**6),
                                                    st.integers(0, 255)), max_size=4),
                     st.integers(0, 10**6))


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=256))
def test_pmt_decoder_raises_only_pmterror(raw):
    try:
        value = pmt.deserialize(raw)
    except pmt.PMTError as exc:
        assert exc.kind in ("bad_pmt", "too_deep", "too_large")
        return
    json.loads(dumps(value))  # whatever decodes can be written as a message


@FUZZ
@given(_mutations())
def test_pmt_decoder_on_mutated_encodings(case):
    value, flips, cut = case
    raw = bytearray(pmt.serialize(value))
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    raw = bytes(raw[:max(1, cut % (len(raw) + 1))])
    try:
        back = pmt.deserialize(raw)
    except pmt.PMTError:
        return
    json.loads(dumps(back))


@FUZZ
@given(st.binary(max_size=256), st.integers(0, 255))
def test_tag_header_decoder_raises_only_frameerror(tail, ntags):
    frame = struct.pack("<HBQQ", 0x5FF0, 1, 0, ntags) + tail
    for raw in (frame, tail):
        try:
            offset, tags, start = decode_header(memoryview(raw))
        except FrameError as exc:
            assert exc.kind in ("truncated", "bad_magic", "bad_pmt", "too_many_tags")
            continue
        assert 0 <= start <= len(raw) and len(tags) == ntags
        assert all(isinstance(t.key, str) for t in tags)


@FUZZ
@given(st.binary(max_size=512))
def test_json_decoder_raises_only_messageerror(raw):
    try:
        value = decode_json(raw)
    except MessageError as exc:
        assert exc.kind in ("bad_json", "too_deep", "too_large")
        return
    check_size(value)
    json.loads(dumps(value))


@FUZZ
@given(st.text(alphabet="[]{}\":,1a ", max_size=300))
def test_json_decoder_on_bracket_soup(text):
    try:
        decode_json(text.encode())
    except MessageError:
        pass


@pytest.fixture(scope="module")
def tagged_source():
    from cvstream.blocks.zmq_io import ZmqSource
    src = ZmqSource(address="inproc://fuzz-tagged", pattern="pull", bind=True,
                    pass_tags=True)
    src.start()
    yield src
    src.stop()


@FUZZ
@given(st.binary(max_size=300))
def test_stream_frame_decoder_counts_instead_of_raising(tagged_source, raw):
    before = sum(tagged_source.counters.values())
    tagged_source._out_tags.clear()
    x = tagged_source._decode_counted(memoryview(raw), 0)
    assert x is None or (x.dtype == np.complex64 and len(x) * 8 <= len(raw))
    if x is None and raw[:2] != b"\xf0\x5f":
        assert sum(tagged_source.counters.values()) > before
