"""GNU Radio sender for the benchmarks (run with Debian's /usr/bin/python3): stream a cf32
file out through a gr-zeromq PUSH sink, paced by GNU Radio's throttle.

usage: gr_send_file.py FILE ADDRESS RATE
"""
import sys
import time

from gnuradio import blocks, gr, zeromq

path, address, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
tb = gr.top_block()
src = blocks.file_source(gr.sizeof_gr_complex, path, False)
thr = blocks.throttle(gr.sizeof_gr_complex, rate)
sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, address, 100, False, -1)
tb.connect(src, thr, sink)
tb.run()
time.sleep(1.0)  # let the socket flush before the process exits
