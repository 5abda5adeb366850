"""GNU Radio message interop: receive PMT messages on pull_msg_source and send them back out
of push_msg_sink (with a field added), so cvstream can check both directions.

usage: messages.py IN_ADDRESS OUT_ADDRESS COUNT
"""
import sys
import time

from gnuradio import blocks, gr, zeromq
import pmt

in_addr, out_addr, count = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Stamp(gr.basic_block):
    def __init__(self):
        gr.basic_block.__init__(self, "stamp", None, None)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self.handle)
        self.seen = 0

    def handle(self, msg):
        self.seen += 1
        out = pmt.dict_add(msg, pmt.intern("seen_by"), pmt.intern("gnuradio"))
        self.message_port_pub(pmt.intern("out"), out)


tb = gr.top_block()
src = zeromq.pull_msg_source(in_addr, 100, False)
stamp = Stamp()
sink = zeromq.push_msg_sink(out_addr, 100, True)
tb.msg_connect(src, "out", stamp, "in")
tb.msg_connect(stamp, "out", sink, "in")
tb.start()
deadline = time.monotonic() + 60
while stamp.seen < count and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
tb.stop()
tb.wait()
