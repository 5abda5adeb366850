"""Radar sweeps from MATLAB files, radar scenes from the synthesizer, and maximum-intensity
projection pictures of 3D images."""
from __future__ import annotations

import numpy as np

from cvstream import EndOfStream, In, Out, Param, Sink, Source, register
from cvstream.dtypes import DTYPES, PortType
from cvstream.errors import CvstreamError, ParamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE

from .npy_io import NARROW
from .plots import need_matplotlib
from .radar_imaging import config_ports, radar_config


def load_mat_variable(path: str, variable: str = "") -> np.ndarray:
    """One array from a MATLAB v4/v5/v7 file (v7.3 is HDF5 and refused with a hint)."""
    import scipy.io
    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:
        raise CvstreamError(f"'{path}' is a MATLAB v7.3 (HDF5) file; save it with "
                            "save(..., '-v7') or write a .npy instead") from None
    except (ValueError, OSError, TypeError) as exc:
        raise CvstreamError(f"'{path}' is not a readable .mat file: {exc}") from None
    arrays = {k: v for k, v in data.items() if not k.startswith("__")}
    if variable:
        if variable not in arrays:
            raise ParamError("variable", f"'{path}' has no variable '{variable}' (it has "
                             f"{', '.join(sorted(arrays)) or 'none'})")
        return np.asarray(arrays[variable])
    if len(arrays) != 1:
        raise ParamError("variable", f"'{path}' holds {len(arrays)} variables "
                         f"({', '.join(sorted(arrays)) or 'none'}); name one")
    return np.asarray(next(iter(arrays.values())))


@register("mat_source")
class MatSource(Source):
    """Stream the items of an array in a MATLAB .mat file along its first axis.

    For radar, an array of shape (n_sweeps, n_freq, n_tx, n_rx) gives one sweep per item.
    complex128/float64 arrays are narrowed to complex64/float32. Ports: out (dtype and shape
    from the file). Latency: none (the file is read at start).
    Example: ``sweeps: {type: mat_source, path: scan.mat, variable: sweeps}``
    """

    out = Out(None, None)
    path = Param(INPUT_FILE, doc=".mat file (MATLAB v4, v5 or v7)")
    variable = Param(str, default="", doc="variable to stream (empty: the only one)")
    chunk = Param(int, default=1, min=1, doc="items per work call")
    rate = Param(float, default=0.0, min=0.0, unit="items/s", doc="item rate, when known")

    def output_types(self, in_types):
        arr = load_mat_variable(self.path, self.variable)
        name = NARROW.get(arr.dtype, arr.dtype.name)
        if arr.ndim < 1 or name not in DTYPES:
            raise CvstreamError(f"'{self.path}': variable holds {arr.dtype} {arr.shape}; "
                                f"expected an array of {', '.join(DTYPES)} items")
        self._type = PortType(name, tuple(arr.shape[1:]), self.rate or None)
        return {"out": self._type}

    def total_items(self):
        return len(self._arr) if hasattr(self, "_arr") else None

    def start(self):
        if not hasattr(self, "_type"):
            self.output_types({})
        arr = load_mat_variable(self.path, self.variable)   # MATLAB's arrays: Fortran order
        self._arr = np.ascontiguousarray(arr, dtype=self._type.np_dtype)
        self._pos = 0

    def work(self):
        if self._pos >= len(self._arr):
            raise EndOfStream
        part = self._arr[self._pos:self._pos + self.chunk]
        self._pos += len(part)
        return part


@register("radar_scene_source")
class RadarSceneSource(Source):
    """Synthesized radar sweeps: random 3D extended targets seen through the Born model,
    with measurement noise, one scene per sweep (scene i drawn from the seed [seed, i], so
    the sweeps do not depend on ``chunk``).

    Ports: out (complex64 sweeps (n_freq, n_tx, n_rx) of ``config``), truth (float32
    reflectivity magnitude (nx, ny, nz), max 1; optional). Latency: none.
    Example: ``scene: {type: radar_scene_source, config: small, count: 16, seed: 1}``
    """

    out = Out("complex64", None)
    truth = Out("float32", None, optional=True)
    config = Param(str, default="small", doc="radar configuration: small, published or a file")
    count = Param(int, default=16, min=1, doc="sweeps to synthesize")
    seed = Param(int, default=0)
    snr_db = Param(float, default=30.0, unit="dB", doc="measurement SNR")
    chunk = Param(int, default=4, min=1, doc="sweeps synthesized per work call")

    def check(self):
        self.cfg = radar_config(self.config)

    def ports(self):
        return config_ports(self, {"out": self.cfg.sweep_shape, "truth": self.cfg.image_shape})

    def total_items(self):
        return self.count

    def start(self):
        from cvstream.models.radar.operators import ForwardOperator
        self._done = 0
        self._forward = ForwardOperator(self.cfg)

    def work(self):
        from cvstream.models.radar.synth import SceneConfig, make_scenes
        if self._done >= self.count:
            raise EndOfStream
        scene = SceneConfig(snr_db=(self.snr_db, self.snr_db))
        parts = [make_scenes(self.cfg, 1, [self.seed, i], scene, forward=self._forward)
                 for i in range(self._done, min(self.count, self._done + self.chunk))]  # own seed
        self._done += len(parts)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


@register("radar_png")
class RadarPng(Sink):
    """Draw maximum-intensity projections (front: x-y, top: x-z, side: y-z) of 3D images.

    With ``{index}`` in ``path`` every image gets its own PNG; otherwise one PNG shows image
    ``index`` (negative counts from the end; -1: the last) at end of stream. Axes are in
    metres when ``config`` is given, voxels otherwise.
    Ports: inp (float32 images (nx, ny, nz)). Latency: none (drawn at end, or per image).
    Example: ``pic: {type: radar_png, path: radar.png, config: small}``
    """

    inp = In("float32", None)
    path = Param(OUTPUT_FILE, doc="PNG file; may contain {index}")
    index = Param(int, default=-1, doc="which image to draw (one-file mode)")
    config = Param(str, default="", doc="radar configuration for metric axes")
    title = Param(str, default="", doc="title over the picture")

    def check(self):
        need_matplotlib("radar_png")
        self.cfg = radar_config(self.config) if self.config else None

    def start(self):
        self._seen = 0
        self._keep = None
        self._last = []

    def work(self, x):
        if x.ndim != 4:
            raise CvstreamError(f"radar_png draws 3D images; got items of shape {x.shape[1:]}")
        if "{index}" in self.path:
            for i, image in enumerate(x):
                self.draw(image, self.path.format(index=self._seen + i), self._seen + i)
        elif self.index >= 0 and self._seen <= self.index < self._seen + len(x):
            self._keep = (np.array(x[self.index - self._seen]), self.index)
        elif self.index < 0:
            self._last = (self._last + [np.array(im) for im in x])[self.index:]
        self._seen += len(x)

    def stop(self):
        if "{index}" in self.path:
            return
        if self.index < 0 and len(self._last) == -self.index:
            self._keep = (self._last[0], self._seen + self.index)
        if self._keep is None:
            raise CvstreamError(f"radar_png: image {self.index} never arrived "
                                f"({self._seen} images seen); nothing drawn")
        image, number = self._keep
        self.draw(image, self.path, number)

    def draw(self, image: np.ndarray, path: str, number: int) -> None:
        from cvstream.models.radar.plots import save_projections
        save_projections(image, path, self.cfg,
                         title=self.title or f"image {number}: maximum-intensity projections")
