"""cvstream blocks inside a GNU Radio top_block (run in a venv that sees Debian's GNU Radio).

usage: embed_chain.py INPUT.npy OUT.npz
GNU Radio's vector_source (with an rx_freq tag at item 5000) -> cvstream multiply_const ->
cvstream fft -> vector_sink; the same source -> cvstream stft -> cvstream istft -> vector_sink;
cvstream's spectrum_synth_source -> vector_sink. Writes outputs and tags, and the same blocks'
output computed by cvstream itself (Block.process / Source.read) in this interpreter."""
import json
import sys

import numpy as np
import pmt
from gnuradio import blocks, gr

import cvstream.gnuradio as cg
from cvstream.blocks import FFT, ISTFT, STFT, MultiplyConst, SpectrumSynthSource

x = np.load(sys.argv[1])
tag = gr.tag_t()
tag.offset, tag.key, tag.value = 5000, pmt.intern("rx_freq"), pmt.from_double(2.4e9)
tag.srcid = pmt.intern("test")

tb = gr.top_block()
src = blocks.vector_source_c(x.tolist(), False, 1, [tag])
gain = cg.block("multiply_const", k=0.5 - 0.25j)
fft = cg.block("fft", size=64, output="db")
spec_sink = blocks.vector_sink_f(64)
gain_sink = blocks.vector_sink_c()
stft = cg.block("stft", size=128, hop=32, window="hann")
istft = cg.block("istft", size=128, hop=32, window="hann", output="complex",
                 in_types=("complex64", 128))
back_sink = blocks.vector_sink_c()
sky = cg.block("spectrum_synth_source", samples=16384, scenes=2, seed=3, chunk=5000)
sky_head = blocks.head(gr.sizeof_gr_complex, 30000)
sky_sink = blocks.vector_sink_c()
tb.connect(src, gain, fft, spec_sink)
tb.connect(gain, gain_sink)
tb.connect(src, stft, istft, back_sink)
tb.connect(sky, sky_head, sky_sink)
tb.run()


def tags(sink):
    return [[t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)]
            for t in sink.tags()]


def whole(block, x):
    out = block.process(x)
    rest = block.flush()
    return np.concatenate([a for a in (out, rest) if a is not None])


ref_gain = MultiplyConst(k=0.5 - 0.25j).process(x)
ref_spec = whole(FFT(size=64, output="db"), ref_gain)
ref_back = whole(ISTFT(size=128, hop=32, window="hann", output="complex"),
                 whole(STFT(size=128, hop=32, window="hann"), x))
ref_sky = np.concatenate(list(SpectrumSynthSource(samples=16384, scenes=2, seed=3,
                                                  chunk=5000).read()))
np.savez(sys.argv[2], ref_gain=ref_gain, ref_spec=ref_spec, ref_back=ref_back, ref_sky=ref_sky,
         gain=np.array(gain_sink.data(), np.complex64),
         spec=np.array(spec_sink.data(), np.float32).reshape(-1, 64),
         back=np.array(back_sink.data(), np.complex64),
         sky=np.array(sky_sink.data(), np.complex64),
         tags=json.dumps({"gain": tags(gain_sink), "spec": tags(spec_sink),
                          "back": tags(back_sink), "sky": tags(sky_sink),
                          "counters": {"fft": fft.counters, "istft": istft.counters}}))
