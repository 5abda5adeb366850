"""Every complex layer against a reference computed with torch complex tensors, values and
gradients, max error <= 1e-5 (float32, relative to the reference's scale)."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from cvstream.models import nn as cnn  # noqa: E402
from cvstream.models.nn.layout import to_complex, to_split  # noqa: E402

TOL = 1e-5
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def crandn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def check(layer, reference, z):
    """Compare layer(split(z)) with reference(z), and the gradients w.r.t. the input."""
    x = to_split(z).detach().requires_grad_(True)
    zr = z.detach().clone().requires_grad_(True)
    y = layer(x)
    y_ref = reference(zr)
    scale = max(1.0, float(y_ref.detach().abs().max()))
    err = float((to_complex(y) - y_ref).detach().abs().max())
    assert err <= TOL * scale, f"value error {err}"
    c = crandn(*y_ref.shape, seed=99)
    (to_complex(y) * c.conj()).real.sum().backward()
    (y_ref * c.conj()).real.sum().backward()
    g_ref = to_split(zr.grad)
    gscale = max(1.0, float(g_ref.abs().max()))
    gerr = float((x.grad - g_ref).abs().max())
    assert gerr <= TOL * gscale, f"gradient error {gerr}"


def cweight(layer):
    return torch.complex(layer.weight_re, layer.weight_im)


def cbias(layer):
    return torch.complex(layer.bias_re, layer.bias_im)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("mode", ["4mult", "gauss"])
@pytest.mark.parametrize("causal", [False, True])
def test_conv(dims, mode, causal):
    layer = cnn.ComplexConv(3, 4, 3, dims=dims, dilation=2, causal=causal, mode=mode)
    with torch.no_grad():
        layer.bias_re.normal_()
        layer.bias_im.normal_()
    spatial = (9, 8, 7)[:dims]

    def ref(z):
        pads = []
        for axis in reversed(range(dims)):
            total = 4
            pads += [total, 0] if causal and axis == dims - 1 else [2, 2]
        zp = torch.complex(F.pad(z.real, pads), F.pad(z.imag, pads))
        return CONV[dims](zp, cweight(layer), cbias(layer), dilation=2)

    check(layer, ref, crandn(2, 3, *spatial))


def test_causal_conv_ignores_the_future():
    layer = cnn.ComplexConv(1, 2, 5, dims=1, dilation=3, causal=True)
    z = crandn(1, 1, 64)
    y1 = layer(to_split(z))
    z2 = z.clone()
    z2[..., 40:] = 0
    y2 = layer(to_split(z2))
    assert torch.equal(y1[..., :40], y2[..., :40])
    assert not torch.equal(y1[..., 40:], y2[..., 40:])


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_transpose(dims):
    layer = cnn.ComplexConvTranspose(3, 2, 2, dims=dims, stride=2)
    with torch.no_grad():
        layer.bias_re.normal_()
        layer.bias_im.normal_()
    check(layer, lambda z: CONV_T[dims](z, cweight(layer), cbias(layer), stride=2),
          crandn(2, 3, *(5, 4, 3)[:dims]))


def test_linear():
    layer = cnn.ComplexLinear(6, 5)
    with torch.no_grad():
        layer.bias_re.normal_()
    check(layer, lambda z: F.linear(z, cweight(layer), cbias(layer)), crandn(4, 6))


def test_batchnorm_naive():
    layer = cnn.ComplexBatchNorm(3, dims=2, mode="naive")

    def ref(z):
        def bn(p):
            m = p.mean((0, 2, 3), keepdim=True)
            v = p.var((0, 2, 3), unbiased=False, keepdim=True)
            return (p - m) / torch.sqrt(v + 1e-5)
        return torch.complex(bn(z.real), bn(z.imag))

    check(layer, ref, crandn(4, 3, 5, 6) * 3 + 1)


def test_batchnorm_whitening_and_fold():
    layer = cnn.ComplexBatchNorm(3, dims=1, mode="whiten")
    with torch.no_grad():
        layer.gamma.normal_()
        layer.beta.normal_()

    def ref(z):
        # independent reference: inverse square root of the 2x2 covariance by eigh
        parts = torch.stack([z.real, z.imag], 0)           # (2, B, C, L)
        mean = parts.mean((1, 3), keepdim=True)
        cen = parts - mean
        cov = torch.einsum("ibcl,jbcl->cij", cen, cen) / (cen.shape[1] * cen.shape[3])
        cov = cov + 1e-5 * torch.eye(2)
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(1, 2)
        white = torch.einsum("cij,jbcl->ibcl", inv_sqrt, cen)
        out = torch.einsum("cij,jbcl->ibcl", layer.gamma, white)
        out = out + layer.beta.view(2, 1, -1, 1)
        return torch.complex(out[0], out[1])

    # correlated parts, so whitening differs from per-part normalization
    z = crandn(8, 3, 20)
    z = torch.complex(z.real, 0.7 * z.real + 0.3 * z.imag) * 2 + (1 - 1j)
    check(layer, ref, z)
    for _ in range(30):
        layer(to_split(crandn(8, 3, 20, seed=5)))
    layer.eval()
    x = to_split(crandn(2, 3, 20, seed=6))
    assert float((layer(x) - layer.fold()(x)).detach().abs().max()) < 1e-5


def test_batchnorm_naive_folds():
    layer = cnn.ComplexBatchNorm(2, dims=1, mode="naive")
    for _ in range(5):
        layer(to_split(crandn(4, 2, 10, seed=3) * 2))
    layer.eval()
    x = to_split(crandn(2, 2, 10, seed=4))
    assert float((layer(x) - layer.fold()(x)).detach().abs().max()) < 1e-5


@pytest.mark.parametrize("groups", [1, 2])
def test_group_and_layer_norm(groups):
    layer = cnn.ComplexGroupNorm(groups, 4, dims=1) if groups > 1 else cnn.ComplexLayerNorm(4)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()

    def ref(z):
        b, c, length = z.shape
        g = z.reshape(b, groups, c // groups, length)
        g = g - g.mean((2, 3), keepdim=True)
        g = g / torch.sqrt((g.abs() ** 2).mean((2, 3), keepdim=True) + 1e-5)
        out = g.reshape(b, c, length) * layer.weight.view(1, -1, 1)
        return out + torch.complex(layer.bias[0], layer.bias[1]).view(1, -1, 1)

    check(layer, ref, crandn(3, 4, 11) * 2 + 0.5j)


def _mod(z):
    return torch.sqrt(z.real ** 2 + z.imag ** 2 + 1e-8)


ACTIVATIONS = {
    "crelu": (lambda: cnn.CReLU(), lambda z, m: torch.complex(z.real.relu(), z.imag.relu())),
    "modrelu": (lambda: cnn.ModReLU(3, init_bias=-0.5),
                lambda z, m: z * torch.relu(_mod(z) + m.bias) / _mod(z)),
    "zrelu": (lambda: cnn.ZReLU(),
              lambda z, m: z * ((z.real >= 0) & (z.imag >= 0))),
    "cardioid": (lambda: cnn.Cardioid(),
                 lambda z, m: 0.5 * (1 + torch.cos(torch.angle(z))) * z),
    "log_compander": (lambda: cnn.LogCompander(),
                      lambda z, m: torch.log1p(_mod(z)) * torch.exp(1j * torch.angle(z))),
    "bounded_mask": (lambda: cnn.BoundedMask(),
                     lambda z, m: torch.tanh(_mod(z)) * torch.exp(1j * torch.angle(z))),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations(name):
    make, ref = ACTIVATIONS[name]
    layer = make()
    check(layer, lambda z: ref(z, layer), crandn(2, 3, 17))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_magnitude_max_pool(dims):
    layer = cnn.MagnitudeMaxPool(2, dims=dims)

    def ref(z):
        b, c = z.shape[:2]
        w = z
        for axis in range(dims):
            w = w.unfold(2 + axis, 2, 2)              # window axes appended at the end
        w = w.reshape(*w.shape[:2 + dims], -1)
        pick = w.abs().argmax(-1, keepdim=True)
        return w.gather(-1, pick).squeeze(-1)

    check(layer, ref, crandn(2, 3, *(8, 6, 4)[:dims]))


def test_avg_pool():
    layer = cnn.ComplexAvgPool(2, dims=2)
    check(layer, lambda z: z.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)), crandn(2, 2, 6, 4))


def test_interleaved_round_trip():
    z = crandn(3, 50, 4)  # (B, L, C) complex items with a channel axis
    x = torch.view_as_real(z)  # what a complex64 stream viewed as float32 looks like
    split = cnn.FromInterleaved(channels_last=True)(x)
    assert torch.equal(to_complex(split), z.permute(0, 2, 1))
    assert torch.equal(cnn.ToInterleaved(channels_last=True)(split), x)
    z1 = crandn(2, 30)
    s1 = cnn.FromInterleaved()(torch.view_as_real(z1))
    assert s1.shape == (2, 2, 30)
    assert torch.equal(cnn.ToInterleaved()(s1), torch.view_as_real(z1))


def test_building_blocks_shapes_causality_and_gradients():
    res = cnn.ResidualBlock(4, dims=1, causal=True, norm="group", act="modrelu")
    x = to_split(crandn(2, 4, 32)).requires_grad_(True)
    res(x).sum().backward()
    assert x.grad.abs().sum() > 0
    dense = cnn.DenseMultiDilatedBlock(2, growth=3, layers=3, dims=1, causal=True)
    z = crandn(1, 2, 64)
    y = dense(to_split(z))
    assert y.shape == (1, 2 * (2 + 9), 64)
    z2 = z.clone()
    z2[..., 50:] = 0
    assert torch.equal(dense(to_split(z2))[..., :50], y[..., :50])
    # receptive field grows with the dilations 1, 2, 4 of the dense layers
    assert [c.dilation[0] for c in dense.layers[2][0].convs] == [1, 2, 4]
    down = cnn.UNetDown(2, 4, dims=3, norm="whiten")
    up = cnn.UNetUp(4, 4, 2, dims=3, norm="whiten")
    vol = to_split(crandn(2, 2, 8, 8, 8))
    pooled, skip = down(vol)
    assert pooled.shape == (2, 8, 4, 4, 4) and skip.shape == (2, 8, 8, 8, 8)
    assert up(pooled, skip).shape == (2, 4, 8, 8, 8)


def test_real_parameter_count_and_real_twin():
    conv = cnn.ComplexConv(4, 8, 3)
    assert cnn.count_real_params(conv) == 2 * (8 * 4 * 3) + 2 * 8

    def real_net(w):
        return torch.nn.Sequential(torch.nn.Conv1d(2, w, 3), torch.nn.Conv1d(w, 2, 3))

    def complex_net(w):
        return torch.nn.Sequential(cnn.ComplexConv(1, w, 3), cnn.ComplexConv(w, 1, 3))

    target = cnn.count_real_params(complex_net(16))
    w = cnn.real_width_for(real_net, target)
    got = cnn.count_real_params(real_net(w))
    assert abs(got - target) <= cnn.count_real_params(real_net(w + 1)) - got
    assert w > 16  # a real twin needs more channels for the same parameter budget


def test_multidilated_conv_is_a_sum_of_dilated_convs():
    layer = cnn.MultiDilatedConv([2, 3], 4, kernel=3, dims=1, dilations=[1, 4], causal=True)

    def ref(z):
        out = 0
        for conv, part, dil in ((layer.convs[0], z[:, :2], 1), (layer.convs[1], z[:, 2:], 4)):
            zp = torch.complex(F.pad(part.real, [2 * dil, 0]), F.pad(part.imag, [2 * dil, 0]))
            bias = cbias(conv) if conv.bias_re is not None else None
            out = out + F.conv1d(zp, cweight(conv), bias, dilation=dil)
        return out

    with torch.no_grad():
        layer.convs[0].bias_re.normal_()
    check(layer, ref, crandn(2, 5, 20))


@pytest.mark.parametrize("chunk", [1, 7])
def test_streaming_real_conv_equals_the_whole_signal_in_any_chunks(chunk):
    """One frame at a time (the exported graph's strided form) and several (stacked taps)
    give the causal convolution over the whole signal."""
    from cvstream.models.nn.streaming import StreamingRealConv
    torch.manual_seed(0)
    conv = StreamingRealConv(4, 16, 3, dilation=4)
    x = torch.randn(161, 4, 40)
    whole = conv(x)
    cache, parts = torch.zeros(conv.cache_shape(161)), []
    for t in range(0, 40, chunk):
        y, cache = conv(x[..., t:t + chunk], cache)
        parts.append(y)
    assert conv.cache_shape(161) == [161, 4, 8]
    torch.testing.assert_close(torch.cat(parts, -1), whole, atol=1e-5, rtol=1e-5)
