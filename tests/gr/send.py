"""GNU Radio side of the interop tests (run with Debian's /usr/bin/python3): stream a ramp
of complex samples, with tags, out through a gr-zeromq sink.

usage: send.py PATTERN ADDRESS PASS_TAGS N RATE   (RATE 0: unthrottled)
"""
import sys
import time

from gnuradio import blocks, gr, zeromq
import pmt

pattern, address, pass_tags, n, rate = sys.argv[1], sys.argv[2], sys.argv[3] == "1", \
    int(sys.argv[4]), float(sys.argv[5])

data = [complex(i, -i) for i in range(n)]
tags = []
for offset, key, value in [(0, "rx_rate", pmt.from_double(1e6)),
                           (1000, "rx_freq", pmt.from_double(915e6)),
                           (4321, "rx_time", pmt.make_tuple(pmt.from_uint64(1700000000),
                                                            pmt.from_double(0.25))),
                           (n - 1, "burst", pmt.from_long(42))]:
    tag = gr.tag_t()
    tag.offset, tag.key, tag.value = offset, pmt.intern(key), value
    tag.srcid = pmt.intern("gr_sender")
    tags.append(tag)

tb = gr.top_block()
src = blocks.vector_source_c(data, False, 1, tags)
make = zeromq.push_sink if pattern == "push" else zeromq.pub_sink
sink = make(gr.sizeof_gr_complex, 1, address, 100, pass_tags, -1)
if rate:
    thr = blocks.throttle(gr.sizeof_gr_complex, rate)
    tb.connect(src, thr, sink)
else:
    tb.connect(src, sink)
tb.run()
time.sleep(1.5)  # let the socket flush before the process exits
