"""GNU Radio side of the interop tests: receive N complex samples from a gr-zeromq source
and write them (.npy) and their tags (JSON, values as serialized PMT hex).

usage: receive.py PATTERN ADDRESS PASS_TAGS N OUT_PREFIX
"""
import json
import sys
import time

import numpy as np
from gnuradio import blocks, gr, zeromq
import pmt

pattern, address, pass_tags, n, out = sys.argv[1], sys.argv[2], sys.argv[3] == "1", \
    int(sys.argv[4]), sys.argv[5]

tb = gr.top_block()
make = zeromq.pull_source if pattern == "pull" else zeromq.sub_source
src = make(gr.sizeof_gr_complex, 1, address, 100, pass_tags, -1)
head = blocks.head(gr.sizeof_gr_complex, n)
sink = blocks.vector_sink_c()
tb.connect(src, head, sink)
tb.start()  # a zeromq source never ends by itself: poll, then stop the flow graph
deadline = time.monotonic() + 90
while len(sink.data()) < n and time.monotonic() < deadline:
    time.sleep(0.05)
tb.stop()
tb.wait()
np.save(out + ".npy", np.array(sink.data(), dtype=np.complex64))
tags = [{"offset": t.offset, "key": pmt.symbol_to_string(t.key),
         "value": pmt.serialize_str(t.value).hex()} for t in sink.tags()]
with open(out + ".json", "w") as fh:
    json.dump(tags, fh)
