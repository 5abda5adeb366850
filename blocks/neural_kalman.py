"""The partitioned-block echo filter with its Kalman gain from a network (a neural Kalman
filter, NKF; trained by ``cvstream models train aec_nkf``, ``models/aec/nkf.py``).

Per block and bin the filter of ``kalman_echo.py`` predicts the echo and its a-priori error
E; the network (an ONNX graph, one call per block for all bins, its hidden state fed back)
sees the level-free features X_p / s_x, E / s_m and the last update dW_p s_x / s_m and
returns a bounded complex gain g_p per partition; the update is
constrain(g_p conj(X_p) E / (P s_x^2 + reg s_m^2)). s_x^2 (the reference's power, mean over
the partitions) and s_m^2 (the microphone's) are smoothed per bin, rising at once.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from cvstream.errors import ParamError

from .kalman_echo import PartitionedKalmanFilter
from .onnx_model import load_model, make_session

EPS = 1e-10


def gain_model(spec: str, block: int, partitions: int):
    """(path, contract) of a gain model (``builtin:NAME`` or a path); a ParamError on
    ``gain_model`` when it is not an ``nkf`` echo filter for ``partitions`` x ``block``."""
    path, c = load_model(spec, "echo_filter", param="gain_model")
    kind = c.preprocess.get("echo_filter", {})
    if kind.get("kind") != "nkf" or (kind.get("block"), kind.get("partitions")) != (
            block, partitions):
        raise ParamError("gain_model", f"'{path}' gives the gain of {kind.get('partitions')} "
                         f"partitions of {kind.get('block')} samples, not {partitions} of "
                         f"{block}")
    return path, c


class NeuralKalmanFilter(PartitionedKalmanFilter):
    """``process(mic, refs)`` as ``PartitionedKalmanFilter`` (one reference channel), the
    gain from the model ``path`` names (``gain_model``)."""

    def __init__(self, path: str, block: int = 160, partitions: int = 32,
                 history: int | None = None):
        super().__init__(block, partitions, 1, history=history)
        path, c = gain_model(path, block, partitions)
        spec = c.preprocess["echo_filter"]
        self.reg, self.smoothing = float(spec["reg"]), float(spec["smoothing"])
        self.session = make_session(path, threads=1)
        self.hidden = np.zeros(c.states[0].shape, np.float32)
        self.dw = np.zeros_like(self.w)
        self.powers = np.zeros((2, block + 1), np.float32)

    def set_offset(self, offset: int) -> None:
        if offset != self.offset:
            self.dw[:] = 0
        super().set_offset(offset)

    def _adapt(self, mic: np.ndarray, x: np.ndarray, e: np.ndarray, spec_e: np.ndarray):
        spec_m = scipy.fft.rfft(np.concatenate([self._zeros, mic]))
        x = x[0]                                                       # (P, bins)
        now = np.stack([np.mean(x.real ** 2 + x.imag ** 2, axis=0),
                        spec_m.real ** 2 + spec_m.imag ** 2])
        self.powers = np.maximum(self.smoothing * self.powers + (1 - self.smoothing) * now,
                                 now).astype(np.float32)
        sx, sm = np.sqrt(self.powers + EPS)
        feats = np.concatenate([x / sx, (spec_e / sm)[None], self.dw[0] * (sx / sm)])
        feats = np.ascontiguousarray(feats.T.astype(np.complex64))     # (bins, 2P + 1)
        gain, self.hidden = self.session.run(None, {
            "features": feats.view(np.float32).reshape(1, 1, *feats.shape, 2),
            "hidden": self.hidden})
        g = np.ascontiguousarray(gain[0, 0]).view(np.complex64)[..., 0].T   # (P, bins)
        scale = 1.0 / (self.parts * self.powers[0] + self.reg * self.powers[1] + EPS)
        self.dw = self._constrained((g * np.conj(x) * (spec_e * scale))[None])
        self.w += self.dw
