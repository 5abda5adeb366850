"""GNU Radio side of the spectrum interop test: a tone in noise at 20 Msps, tagged with
rx_rate and rx_freq, out of zeromq.pub_sink(pass_tags=True), paced by a throttle.

usage: send_tone.py ADDRESS TONE_OFFSET_HZ SECONDS
"""
import sys
import time

import numpy as np
from gnuradio import blocks, gr, zeromq
import pmt

address, offset, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rate, center = 20e6, 2.4e9
n = int(rate * seconds)
rng = np.random.default_rng(0)
t = np.arange(n)
x = 0.5 * np.exp(2j * np.pi * offset / rate * t) + \
    (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.05
tags = []
for key, value in (("rx_rate", rate), ("rx_freq", center)):
    tag = gr.tag_t()
    tag.offset, tag.key, tag.value = 0, pmt.intern(key), pmt.from_double(value)
    tags.append(tag)
tb = gr.top_block()
src = blocks.vector_source_c(x.astype(np.complex64).tolist(), False, 1, tags)
thr = blocks.throttle(gr.sizeof_gr_complex, 10e6)
tb.connect(src, thr, zeromq.pub_sink(gr.sizeof_gr_complex, 1, address, 100, True, -1))
time.sleep(1.0)  # let the subscriber connect first (PUB drops what nobody hears)
tb.run()
time.sleep(1.0)
