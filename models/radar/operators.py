"""Born forward operator and image formation, factorized per antenna (numpy only).

Born model: ``y[k, t, r] = sum_v x[v] exp(-j k (R_t + R_r)) / (4 pi R_t R_r)`` with
``R_p = |p - v|``: the product of a Tx factor ``a_t = exp(-j k R_t) / (4 pi R_t)`` and an
Rx factor ``a_r = exp(-j k R_r) / R_r``. So every operator here keeps per-antenna tables of
shape (K, T, N) and (K, R, N): memory K (T + R) N instead of the dense K T R N.

Image formation is one shape for all methods:
``img[v] = sum_k w[k] sum_t g[k, t, v] sum_r y[k, t, r] g[k, r, v]`` (a matmul over r, then
a weighted sum over t), with per-antenna kernels ``g``:

- ``adjoint``:        g = conj(a_t), conj(a_r), w = 1                 (A^H y)
- ``backprojection``: g = exp(+j k R), w = 1                         (phase-only kernel)
- ``kirchhoff``:      g = (z_v - z_p) exp(+j k R), w = k             (obliquity cos(theta)
  times the spreading compensation R, and the k ramp of the Kirchhoff integral)
"""
from __future__ import annotations

import numpy as np

from .geometry import RadarConfig

METHODS = ("adjoint", "backprojection", "kirchhoff")


def distances(points: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """(P, N) distances between antennas and voxels."""
    return np.linalg.norm(points[:, None, :] - voxels[None, :, :], axis=2)


def antenna_kernels(cfg: RadarConfig, points: np.ndarray, method: str,
                    tx_side: bool) -> np.ndarray:
    """(K, P, N) complex64 image-formation kernel of ``method`` for the given antennas."""
    vox = cfg.voxels()
    dist = distances(points, vox)                                  # (P, N)
    phase = np.exp(1j * cfg.wavenumbers[:, None, None] * dist[None])  # (K, P, N)
    if method == "adjoint":  # the Born amplitude 1 / (4 pi R_t R_r), 4 pi on the Tx side
        g = phase / (dist[None] * (4 * np.pi if tx_side else 1.0))
    elif method == "backprojection":
        g = phase
    elif method == "kirchhoff":
        g = phase * (vox[None, None, :, 2] - points[None, :, 2:3])
    else:
        raise ValueError(f"unknown method '{method}' (use one of {', '.join(METHODS)})")
    return g.astype(np.complex64)


class ImageFormation:
    """One image-formation method for one configuration; tables built once (per stream)."""

    def __init__(self, cfg: RadarConfig, method: str = "adjoint"):
        self.cfg, self.method = cfg, method
        self.g_tx = antenna_kernels(cfg, cfg.tx, method, tx_side=True)
        self.g_rx = antenna_kernels(cfg, cfg.rx, method, tx_side=False)
        k = cfg.wavenumbers
        self.weights = (k / k.max() if method == "kirchhoff" else np.ones_like(k)
                        ).astype(np.float32)

    def __call__(self, sweeps: np.ndarray) -> np.ndarray:
        """(B, K, T, R) sweeps -> (B, N) complex64 images (voxels in C order)."""
        sweeps = np.asarray(sweeps, np.complex64)
        img = np.zeros((len(sweeps), self.cfg.n_voxels), np.complex64)
        for k in range(len(self.weights)):
            z = np.matmul(sweeps[:, k], self.g_rx[k])            # (B, T, N)
            z *= self.g_tx[k]
            img += self.weights[k] * z.sum(axis=1)
        return img

    def magnitude(self, sweeps: np.ndarray) -> np.ndarray:
        """(B, K, T, R) -> (B, nx, ny, nz) float32 magnitude images normalized to max 1."""
        mag = np.abs(self(sweeps)).reshape(len(sweeps), *self.cfg.image_shape)
        return normalize_max(mag)


def normalize_max(images: np.ndarray) -> np.ndarray:
    """Scale each image (axis 0 indexes images) to a maximum of 1 (all-zero images stay 0)."""
    flat = images.reshape(len(images), int(np.prod(images.shape[1:])))
    peak = flat.max(axis=1, initial=0.0)
    scale = np.where(peak > 0, 1.0 / np.maximum(peak, 1e-30), 0.0).astype(np.float32)
    return (images * scale.reshape(-1, *([1] * (images.ndim - 1)))).astype(np.float32)


class ForwardOperator:
    """The Born forward model y = A x, factorized per antenna."""

    def __init__(self, cfg: RadarConfig):
        self.cfg = cfg
        adjoint = ImageFormation(cfg, "adjoint")
        self.a_tx = np.conj(adjoint.g_tx)   # exp(-j k R_t) / (4 pi R_t)
        self.a_rx = np.conj(adjoint.g_rx)   # exp(-j k R_r) / R_r

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, N) or (B, nx, ny, nz) complex reflectivity -> (B, K, T, R) complex64 sweeps."""
        x = np.asarray(x, np.complex64).reshape(len(x), -1)
        k_, t_, r_ = self.cfg.sweep_shape
        out = np.empty((len(x), k_, t_, r_), np.complex64)
        for k in range(k_):
            out[:, k] = np.matmul(self.a_tx[k][None] * x[:, None, :], self.a_rx[k].T)
        return out
