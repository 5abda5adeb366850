"""PMT codec and gr-zeromq framing: exact bytes as GNU Radio 3.10 writes them."""
import numpy as np
import pytest

from cvstream import pmt
from cvstream.chunk import Tag
from cvstream.zmq_wire import FrameError, decode_header, encode_header

# (value, bytes pmt::serialize_str gives in GNU Radio 3.10.5)
KNOWN = [
    (True, "00"), (False, "01"), (None, "06"), ("ab", "0200026162"),
    (5, "0300000005"), (-3, "03fffffffd"), (2**40, "0d0000010000000000"),
    (np.uint64(7), "0b0000000000000007"), (1.5, "043ff8000000000000"),
    (1 + 2j, "053ff00000000000004000000000000000"),
    (pmt.Pair("a", 1), "07020001610300000001"),
    ({"j": 2.0, "k": 1}, "09070200016a04400000000000000009070200016b030000000106"),
    ((np.uint64(3), 0.5), "0c000000020b0000000000000003043fe0000000000000"),
    ([1, 1], "080000000203000000010300000001"),
    (np.array([1, 2, 3], np.float32), "0a080000000301003f8000004000000040400000"),
    (np.array([1 + 1j], np.complex64), "0a0a0000000101003f8000003f800000"),
    (np.array([1, 2, 3], np.uint8), "0a00000000030100010203"),
    (np.array([1, -1], np.int16), "0a030000000201000001ffff"),
]


@pytest.mark.parametrize("value, hexbytes", KNOWN, ids=[h for _, h in KNOWN])
def test_serialize_matches_gnuradio(value, hexbytes):
    assert pmt.serialize(value).hex() == hexbytes
    back = pmt.deserialize(bytes.fromhex(hexbytes))
    assert pmt.serialize(back).hex() == hexbytes


def test_rx_time_keeps_its_types():
    value = pmt.deserialize(pmt.serialize((np.uint64(1700000000), 0.25)))
    assert isinstance(value[0], np.uint64) and value[1] == 0.25


@pytest.mark.parametrize("raw", ["", "02", "0200ff61", "0a08000000ff0100", "ee",
                                 "0907020001610300", "0800ffffff"])
def test_malformed_pmt_raises_pmterror(raw):
    with pytest.raises(pmt.PMTError):
        pmt.deserialize(bytes.fromhex(raw))


def test_tag_header_round_trip():
    tags = [Tag(100, "rx_freq", 915e6, False), Tag(105, "rx_time", (np.uint64(5), 0.5), "src")]
    payload = np.arange(8, dtype=np.complex64).tobytes()
    frame = encode_header(100, tags) + payload
    offset, back, start = decode_header(memoryview(frame))
    assert offset == 100 and frame[start:] == payload
    assert [(t.offset, t.key) for t in back] == [(100, "rx_freq"), (105, "rx_time")]
    assert back[1].srcid == "src"
    assert frame[:2] == b"\xf0\x5f" and frame[2] == 1  # magic 0x5FF0 little-endian, version 1


@pytest.mark.parametrize("frame, kind", [
    (b"\x00" * 5, "truncated"),
    (b"\x00\x00" + b"\x01" + b"\x00" * 16, "bad_magic"),
    (encode_header(0, [Tag(0, "k", 1)])[:-3], "bad_pmt"),
    (encode_header(0, [])[:-8] + (1).to_bytes(8, "little") + b"\x00" * 8 + b"\xee", "bad_pmt"),
])
def test_bad_headers_raise_frame_errors(frame, kind):
    with pytest.raises(FrameError) as err:
        decode_header(memoryview(frame))
    assert err.value.kind == kind
