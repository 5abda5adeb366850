"""Rewrites of an exported ONNX graph that keep its numbers (to float32 rounding) and speed it
up on ONNX Runtime's CPU kernels.

``conv1d_as_2d``: ONNX Runtime runs a 1-D convolution as an im2col and a small matrix
product per batch item, but a 2-D one in its blocked channel layout (NCHWc) with vectorized
kernels. Each 1-D Conv becomes Unsqueeze -> Conv over (1, k) -> Squeeze, its weights
(out, in, k) -> (out, in, 1, k): the same convolution (outputs equal to float32 rounding).
The spectrum segmenter's model runs about a tenth faster so, layout reorders included
(README, stop 68).
"""
from __future__ import annotations

import numpy as np

#: the axis ``conv1d_as_2d`` inserts (the 2-D convolution's height, 1)
_HEIGHT_AXIS = 2


def conv1d_as_2d(proto) -> int:
    """Rewrite every Conv with a 1-D kernel in the ``onnx`` ModelProto ``proto`` (in place)
    as a 2-D Conv over a height-1 image; the number of convolutions rewritten."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    weights = {init.name: init for init in graph.initializer}
    axes = _unique_name(graph, "conv1d_as_2d_axes")
    nodes, rewritten = [], 0
    for node in graph.node:
        w = weights.get(node.input[1]) if node.op_type == "Conv" else None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute} \
            if w is not None else {}
        if w is None or len(w.dims) != 3 or attrs.get("auto_pad", b"NOTSET") != b"NOTSET":
            nodes.append(node)
            continue
        rewritten += 1
        kernel = numpy_helper.to_array(w)[:, :, None, :]
        w2 = numpy_helper.from_array(kernel, _unique_name(graph, f"{w.name}_2d"))
        graph.initializer.append(w2)
        inp, out = f"{node.output[0]}_2d_in", f"{node.output[0]}_2d_out"
        pads = attrs.get("pads", [0, 0])
        conv = helper.make_node(
            "Conv", [inp, w2.name, *node.input[2:]], [out], name=f"{node.name}_2d",
            kernel_shape=[1, kernel.shape[-1]], dilations=[1, attrs.get("dilations", [1])[0]],
            strides=[1, attrs.get("strides", [1])[0]], pads=[0, pads[0], 0, pads[1]],
            group=attrs.get("group", 1))
        nodes += [helper.make_node("Unsqueeze", [node.input[0], axes], [inp]), conv,
                  helper.make_node("Squeeze", [out, axes], [node.output[0]])]
    if not rewritten:
        return 0
    graph.initializer.append(numpy_helper.from_array(np.array([_HEIGHT_AXIS], np.int64), axes))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return rewritten


def _unique_name(graph, name: str) -> str:
    taken = {init.name for init in graph.initializer} | \
        {out for node in graph.node for out in node.output}
    while name in taken:
        name += "_"
    return name
