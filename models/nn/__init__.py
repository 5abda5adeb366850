"""Complex-valued layers on real tensors (training side; needs torch).

A complex feature map with C channels travels as a real tensor of 2C channels, the C real
parts first, then the C imaginary parts: ``(B, 2C, *spatial)`` ("split" layout). Every op
is built from real convolutions, matmuls and elementwise functions, so the networks export
to ONNX and run in ONNX Runtime, which has no complex tensors.

Streams enter as interleaved pairs (a complex64 array viewed as float32 has a trailing axis
of 2); ``FromInterleaved`` / ``ToInterleaved`` convert at the edges of a network.
"""
from .activations import BoundedMask, Cardioid, CReLU, LogCompander, ModReLU, ZReLU
from .blocks import DenseMultiDilatedBlock, MultiDilatedConv, ResidualBlock, UNetDown, UNetUp
from .conv import ComplexConv, ComplexConvTranspose, ComplexLinear
from .layout import FromInterleaved, ToInterleaved, join, split, to_complex, to_split
from .norm import Complex2x2Affine, ComplexBatchNorm, ComplexGroupNorm, ComplexLayerNorm
from .params import count_real_params, real_width_for
from .pooling import ComplexAvgPool, MagnitudeMaxPool

__all__ = [
    "BoundedMask", "Cardioid", "CReLU", "LogCompander", "ModReLU", "ZReLU",
    "DenseMultiDilatedBlock",
    "MultiDilatedConv", "ResidualBlock", "UNetDown", "UNetUp", "ComplexConv",
    "ComplexConvTranspose", "ComplexLinear", "FromInterleaved", "ToInterleaved", "join",
    "split", "to_complex", "to_split", "Complex2x2Affine", "ComplexBatchNorm",
    "ComplexGroupNorm", "ComplexLayerNorm", "count_real_params", "real_width_for",
    "ComplexAvgPool", "MagnitudeMaxPool",
]
