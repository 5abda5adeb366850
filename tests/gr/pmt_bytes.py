"""Print pmt::serialize_str of a set of values as JSON (name -> hex), to check cvstream's
PMT codec against the real thing."""
import json

import pmt

d = pmt.make_dict()
d = pmt.dict_add(d, pmt.intern("freq"), pmt.from_double(2.4e9))
d = pmt.dict_add(d, pmt.intern("label"), pmt.intern("qpsk"))
values = {
    "true": pmt.PMT_T, "nil": pmt.PMT_NIL, "symbol": pmt.intern("rx_freq"),
    "long": pmt.from_long(-123456), "wide": pmt.from_long(1 << 45),
    "uint64": pmt.from_uint64(1 << 63), "double": pmt.from_double(-0.125),
    "complex": pmt.from_complex(0.5 - 2j),
    "rx_time": pmt.make_tuple(pmt.from_uint64(1700000000), pmt.from_double(0.5)),
    "dict": d, "pair": pmt.cons(pmt.intern("a"), pmt.from_long(1)),
    "f32vec": pmt.init_f32vector(3, [1.0, -2.0, 3.5]),
    "c32vec": pmt.init_c32vector(2, [1 + 2j, -1j]),
    "u8vec": pmt.init_u8vector(4, [0, 1, 254, 255]),
    "vector": pmt.make_vector(2, pmt.from_double(1.0)),
}
print(json.dumps({k: pmt.serialize_str(v).hex() for k, v in values.items()}))
