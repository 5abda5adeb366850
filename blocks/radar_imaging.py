"""Near-field MIMO radar imaging: sweeps (n_freq, n_tx, n_rx) in, 3D images (nx, ny, nz) out.

``radar_migration`` forms images with back-projection, Kirchhoff migration or the adjoint
(numpy, per-antenna tables); ``radar_reconstruct`` runs a learned model whose ONNX graph
holds the adjoint and the network. Both declare their ports from the radar configuration,
so ``cvstream validate`` refuses sweeps of the wrong shape, and both skip (and count) sweeps
holding NaN or Inf instead of failing the stream.
"""
from __future__ import annotations

import os
import time

import numpy as np

from cvstream import GeneralBlock, In, Out, Param, register
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError, ParamError
from cvstream.ports import BoundPort

from .onnx_model import load_model, make_session


def radar_config(spec):
    """The configuration a ``config`` parameter names, as a ParamError when it is bad."""
    from cvstream.models.radar.geometry import load_config
    try:
        return load_config(spec)
    except CvstreamError as exc:
        raise ParamError("config", str(exc)) from None


def config_ports(block, shapes: dict) -> list[BoundPort]:
    """The block's declared ports with item shapes fixed by its radar configuration."""
    ports = []
    for decl in block._port_decls:
        port = decl.bind()
        port.shape = tuple(shapes[port.name])
        ports.append(port)
    return ports


class SweepImager(GeneralBlock):
    """Shared by the imaging blocks: ports from ``self.cfg``, bad sweeps skipped."""

    inp = In("complex64", None, doc="sweeps (n_freq, n_tx, n_rx) of the configuration")
    out = Out("float32", None, doc="magnitude images (nx, ny, nz), max 1")
    cfg = None
    stateless = True  # one image per sweep

    def ports(self):
        return config_ports(self, {"inp": self.cfg.sweep_shape, "out": self.cfg.image_shape})

    def output_types(self, in_types):
        rate = in_types["inp"].rate if "inp" in in_types else None
        return {"out": PortType("float32", self.cfg.image_shape, rate)}

    def finite(self, x: np.ndarray) -> np.ndarray:
        """The sweeps of ``x`` without NaN/Inf (counted as bad_sweeps)."""
        ok = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
        if not ok.all():
            self.count("bad_sweeps", int((~ok).sum()))
            return x[ok]
        return x

    def timed(self, seconds: float, frames: int) -> None:
        self.count("frames", frames)
        self.count("compute_us", int(seconds * 1e6))


@register("radar_migration")
class RadarMigration(SweepImager):
    """Classical imaging of each sweep: back-projection, Kirchhoff migration or the adjoint.

    Ports: inp (complex64 sweeps, shape (n_freq, n_tx, n_rx) of ``config``), out (float32
    images (nx, ny, nz), magnitude normalized to max 1). Sweeps with NaN/Inf are skipped and
    counted (bad_sweeps). Tables of K (T + R) N complex values are built at start.
    Latency: one sweep (about 2 ms for small, 12 ms for published on 2 cores).
    Example: ``bp: {type: radar_migration, config: small, method: kirchhoff}``
    """

    config = Param(str, default="small", doc="radar configuration: small, published or a file")
    method = Param(str, default="backprojection",
                   choices=("backprojection", "kirchhoff", "adjoint"))

    def check(self):
        self.cfg = radar_config(self.config)
        self._imager = None

    def start(self):
        from cvstream.models.radar.operators import ImageFormation
        self._imager = ImageFormation(self.cfg, self.method)

    def work(self, x):
        if self._imager is None:
            self.start()
        x = self.finite(x)
        t0 = time.perf_counter()
        images = self._imager.magnitude(x)
        self.timed(time.perf_counter() - t0, len(x))
        return images


@register("radar_reconstruct")
class RadarReconstruct(SweepImager):
    """Learned imaging of each sweep with a shipped or exported radar model (the operator
    and the network in one ONNX graph).

    ``method`` picks the shipped model of ``config``: ``deep2s`` (adjoint -> 3D U-Net),
    ``complex`` (adjoint -> complex 3D U-Net) or ``unrolled`` (gradient steps with the exact
    forward and adjoint operators, each followed by a learned denoiser: generalizes to
    shapes the training never saw; `small`'s then runs FISTA-L1 steps from that estimate,
    ``polish`` of them, by default the count chosen on validation scenes, 0 for speed) or
    ``support`` (FISTA-L1 steps, a 3D U-Net's map of where the reflectors are, then the
    linear MMSE estimate under that prior with the exact operator, reweighted where the map
    expects a sparse scene: the best on unseen shapes for both). ``model`` (an .onnx path or
    builtin name) overrides it; the configuration then comes from the model's contract, and
    a ``config`` given must be the same one. Ports: inp (complex64 sweeps (n_freq, n_tx,
    n_rx)), out (float32 images (nx, ny, nz), max 1). Sweeps with NaN/Inf are skipped and
    counted (bad_sweeps); up to ``max_batch`` queued sweeps share one model call.
    Latency: one sweep plus the model (2 cores, ms per sweep at 4 a call, small /
    published: Deep2S 7 / 40, complex 12 / 60, unrolled 140 (``polish: 0``: 40) / 62,
    support 31 / 97, on a machine where it read 142 / 246 with its rounds before their
    Gram matrix).
    Example: ``net: {type: radar_reconstruct, config: published, method: unrolled}``
    """

    method = Param(str, default="deep2s", choices=("deep2s", "complex", "unrolled", "support"),
                   doc="the shipped model: builtin:radar_<method>_<config>")
    model = Param(str, default="", doc="an .onnx path or builtin name instead of the "
                  "shipped model of method and config")
    config = Param(str, default="", doc="radar configuration: small, published or a file "
                   "(empty: small, or the model's)")
    threads = Param(int, default=0, min=0, doc="ONNX Runtime intra-op threads (0: one per "
                    "core, up to 4: the model is the heavy block of a radar graph)")
    max_batch = Param(int, default=4, min=1, doc="sweeps per model call when behind")
    polish = Param(int, default=-1, min=-1, doc="FISTA-L1 steps after an unrolled model's "
                   "learned ones (-1: the model's own count, chosen on validation scenes; "
                   "0: none; each costs a forward and an adjoint)")

    def check(self):
        from cvstream.models.radar.geometry import config_from_dict, shipped_configs
        model = self.model
        if not model:
            if self.config and self.config not in shipped_configs():
                raise ParamError("config", f"no shipped {self.method} model for '{self.config}'"
                                 "; give model: (an .onnx trained for it)")
            model = f"builtin:radar_{self.method}_{self.config or 'small'}"
        self.path, contract = load_model(model, task="radar_imaging")
        self.cfg = config_from_dict(contract.preprocess["radar_config"], self.path)
        if self.config:
            want = radar_config(self.config)
            if not want.same_as(self.cfg):
                raise ParamError("config", f"'{self.config}' ({want.describe()}) is not the "
                                 f"configuration model '{contract.name}' was trained for "
                                 f"({self.cfg.describe()})")
        settable = contract.postprocess.get("polish")
        if self.polish > 0 and not settable:
            raise ParamError("polish", f"model '{contract.name}' has no FISTA steps to set "
                             "(the shipped unrolled small model has)")
        self._feed = ({settable["input"]: np.array(self.polish, np.int64)}
                      if settable and self.polish >= 0 else {})
        self._session = None

    def start(self):
        self._session = make_session(self.path,
                                     self.threads or max(1, min(4, os.cpu_count() or 1)))

    def work(self, x):
        if self._session is None:
            self.start()
        x = self.finite(x)
        out = np.empty((len(x), *self.cfg.image_shape), np.float32)
        t0 = time.perf_counter()
        for i in range(0, len(x), self.max_batch):
            part = np.ascontiguousarray(x[i:i + self.max_batch])
            feed = part.view(np.float32).reshape(len(part), 1, *part.shape[1:], 2)
            out[i:i + len(part)] = self._session.run(None, {"sweep": feed,
                                                            **self._feed})[0][:, 0]
        self.timed(time.perf_counter() - t0, len(x))
        return out
