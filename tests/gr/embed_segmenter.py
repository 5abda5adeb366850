"""The segmenter inside GNU Radio: cvstream's spectrum_synth_source -> cvstream
spectrum_segmenter -> GNU Radio's message_debug (PMT dicts) and cvstream's message_sink.

usage: embed_segmenter.py OUT.jsonl OUT.json"""
import json
import sys

import pmt
from gnuradio import blocks, gr

import cvstream.gnuradio as cg

tb = gr.top_block()
sky = cg.block("spectrum_synth_source", rate=20e6, freq=2.45e9, scenes=4, seed=1, snr_min=0,
               snr_max=30)
seg = cg.block("spectrum_segmenter", model="builtin:spectrum_segmenter")
debug = blocks.message_debug()
write = cg.block("message_sink", path=sys.argv[1])
tb.connect(sky, seg)
tb.msg_connect(seg, "detections", debug, "store")
tb.msg_connect(seg, "detections", write, "inp")
tb.run()
stored = [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())]
with open(sys.argv[2], "w") as f:
    json.dump({"stored": stored, "counters": seg.counters}, f)
