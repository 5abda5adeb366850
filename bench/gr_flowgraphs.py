"""GNU Radio flow graphs for the benchmarks (run with /usr/bin/python3).

usage: gr_flowgraphs.py inproc SECONDS
       gr_flowgraphs.py zmq_rx ADDRESS SECONDS      (pull_source -> null_sink; prints Msps)
       gr_flowgraphs.py zmq_tx ADDRESS              (null_source -> push_sink, until killed)
       gr_flowgraphs.py file_tx FILE ADDRESS RATE [FRAME]  (cf32 file -> throttle -> push_sink)
       gr_flowgraphs.py file_pub FILE ADDRESS RATE  (cf32 file -> throttle -> pub_sink with the
                                                     tag header; starts 1 s after binding)
       gr_flowgraphs.py chain FILE ITEMS K          (cf32 file, repeated -> head(ITEMS) ->
                                                     K x multiply_const_cc -> null_sink;
                                                     prints {"seconds": ...} of tb.run())
inproc and zmq_rx print one JSON line {"msps": ...} measured over SECONDS after a 1 s
warm-up.
"""
import json
import sys
import time

from gnuradio import analog, blocks, gr, zeromq


def measure(tb, sink, seconds):
    tb.start()
    time.sleep(1.0)
    n0, t0 = sink.nitems_read(0), time.perf_counter()
    time.sleep(seconds)
    n1, t1 = sink.nitems_read(0), time.perf_counter()
    tb.stop()
    tb.wait()
    return (n1 - n0) / (t1 - t0) / 1e6


def main():
    mode = sys.argv[1]
    tb = gr.top_block()
    c = gr.sizeof_gr_complex
    if mode == "inproc":
        src = analog.sig_source_c(20e6, analog.GR_COS_WAVE, 1e6, 1.0)
        mul = blocks.multiply_const_cc(0.5)
        sink = blocks.null_sink(c)
        tb.connect(src, mul, sink)
        print(json.dumps({"msps": measure(tb, sink, float(sys.argv[2]))}))
    elif mode == "zmq_rx":
        src = zeromq.pull_source(c, 1, sys.argv[2], 100, False, -1)
        sink = blocks.null_sink(c)
        tb.connect(src, sink)
        print(json.dumps({"msps": measure(tb, sink, float(sys.argv[3]))}))
    elif mode == "zmq_tx":
        src = blocks.null_source(c)
        tb.connect(src, zeromq.push_sink(c, 1, sys.argv[2], 100, False, -1))
        tb.run()
    elif mode == "file_tx":
        src = blocks.file_source(c, sys.argv[2], False)
        thr = blocks.throttle(c, float(sys.argv[4]))
        if len(sys.argv) > 5:  # samples per ZeroMQ frame (GNU Radio's default: its buffer's)
            thr.set_output_multiple(int(sys.argv[5]))
        tb.connect(src, thr, zeromq.push_sink(c, 1, sys.argv[3], 100, False, -1))
        tb.run()
        time.sleep(1.0)  # let the socket flush before the process exits
    elif mode == "chain":
        blocks_in_series = [blocks.file_source(c, sys.argv[2], True),
                            blocks.head(c, int(float(sys.argv[3])))]
        blocks_in_series += [blocks.multiply_const_cc(0.999) for _ in range(int(sys.argv[4]))]
        blocks_in_series.append(blocks.null_sink(c))
        tb.connect(*blocks_in_series)
        t0 = time.perf_counter()
        tb.run()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
    elif mode == "file_pub":
        src = blocks.file_source(c, sys.argv[2], False)
        thr = blocks.throttle(c, float(sys.argv[4]))
        tb.connect(src, thr, zeromq.pub_sink(c, 1, sys.argv[3], 100, True, -1))
        time.sleep(1.0)  # a PUB socket sends only to subscribers already connected
        tb.run()
        time.sleep(1.0)


if __name__ == "__main__":
    main()
