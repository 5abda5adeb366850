"""Radar configurations: antenna positions, frequencies and the voxel grid (numpy only).

A configuration is a YAML or JSON mapping::

    name: small
    tx: {from: [x, y, z], to: [x, y, z], count: 8}    # or an explicit list of [x, y, z]
    rx: [[x, y, z], ...]
    frequencies: {start: 4.0e9, stop: 16.0e9, count: 16}   # or a list of Hz
    grid: {x: {start: -0.15, stop: 0.15, count: 16}, y: ..., z: ...}   # or lists of metres

Ranges include both ends. ``load_config("published")`` and ``load_config("small")`` read
the shipped files; anything else is a path. Models store ``to_dict()`` (explicit lists) in
their contracts, so a model and a block agree exactly when ``same_as`` says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cvstream.errors import CvstreamError

C0 = 299792458.0  # speed of light, m/s
CONFIG_DIR = Path(__file__).parent / "configs"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yml"))


#: the moves ``RadarConfig.symmetries`` looks for: x <-> y, and a half turn about z
MOVES = {"transpose": np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]]),
         "turn": np.diag([-1.0, -1, 1])}


class Symmetry(NamedTuple):
    """One move of the array's symmetry group as index maps: voxel n goes to voxel
    ``voxels[n]``, Tx antenna t to ``tx[t]``, Rx antenna r to ``rx[r]``; so the Born
    operator's entry for (voxels[n], f, tx[t], rx[r]) equals the one for (n, f, t, r)."""
    voxels: np.ndarray
    tx: np.ndarray
    rx: np.ndarray


def _mapping(points: np.ndarray, move: np.ndarray) -> np.ndarray | None:
    """i -> the index of ``move`` applied to points[i], or None when a moved point is not
    one of ``points``."""
    close = np.isclose(points @ move.T, points[:, None]).all(axis=2)    # (original, moved)
    if not close.any(axis=0).all():
        return None
    return close.argmax(axis=0)


@dataclass(frozen=True, eq=False)
class RadarConfig:
    name: str
    tx: np.ndarray        # (T, 3) metres
    rx: np.ndarray        # (R, 3) metres
    freqs: np.ndarray     # (K,) Hz
    x: np.ndarray         # grid axes, metres
    y: np.ndarray
    z: np.ndarray

    @property
    def sweep_shape(self) -> tuple[int, int, int]:
        """One sweep: (n_freq, n_tx, n_rx)."""
        return (len(self.freqs), len(self.tx), len(self.rx))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One image: (nx, ny, nz)."""
        return (len(self.x), len(self.y), len(self.z))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def wavenumbers(self) -> np.ndarray:
        return 2 * np.pi * self.freqs / C0

    def voxels(self) -> np.ndarray:
        """(N, 3) voxel centres, x slowest and z fastest (the image's C order)."""
        gx, gy, gz = np.meshgrid(self.x, self.y, self.z, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)

    def to_dict(self) -> dict:
        def pts(a):
            return [[float(v) for v in row] for row in a]
        return {"name": self.name, "tx": pts(self.tx), "rx": pts(self.rx),
                "frequencies": [float(f) for f in self.freqs],
                "grid": {k: [float(v) for v in getattr(self, k)] for k in "xyz"}}

    def same_as(self, other: "RadarConfig") -> bool:
        pairs = [(self.tx, other.tx), (self.rx, other.rx), (self.freqs, other.freqs),
                 (self.x, other.x), (self.y, other.y), (self.z, other.z)]
        return all(a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-9)
                   for a, b in pairs)

    def symmetries(self) -> tuple[str, ...]:
        """The grid's symmetries that map the Tx positions onto Tx positions, the Rx onto
        Rx and the grid onto itself, so that a scene turned by one measures as the
        original, its images turned the same way: ``transpose`` (x <-> y) and ``turn``
        (x, y -> -x, -y; an X-shaped array has both)."""
        grids = {"transpose": np.array_equal(self.x, self.y),
                 "turn": (np.allclose(self.x, -self.x[::-1]) and
                          np.allclose(self.y, -self.y[::-1]))}
        return tuple(name for name, move in MOVES.items()
                     if grids[name] and _mapping(self.tx, move) is not None
                     and _mapping(self.rx, move) is not None)

    def symmetry_group(self) -> list[Symmetry]:
        """Every composition of ``symmetries()``, the identity first, as index maps."""
        moves = [np.eye(3)]
        for name in self.symmetries():
            moves += [MOVES[name] @ m for m in moves
                      if not any(np.allclose(MOVES[name] @ m, o) for o in moves)]
        axes = (self.x, self.y, self.z)
        out = []
        for move in moves:
            moved = self.voxels() @ move.T
            ijk = [np.abs(a[None] - moved[:, i, None]).argmin(1) for i, a in enumerate(axes)]
            out.append(Symmetry(np.ravel_multi_index(ijk, self.image_shape),
                                _mapping(self.tx, move), _mapping(self.rx, move)))
        return out

    def describe(self) -> str:
        k, t, r = self.sweep_shape
        nx, ny, nz = self.image_shape
        return (f"{self.name}: {t} Tx x {r} Rx x {k} frequencies "
                f"({self.freqs[0] / 1e9:g}-{self.freqs[-1] / 1e9:g} GHz), "
                f"grid {nx}x{ny}x{nz}")


def _linspace(spec, where: str) -> np.ndarray:
    if isinstance(spec, dict):
        try:
            start, stop, count = float(spec["start"]), float(spec["stop"]), int(spec["count"])
        except (KeyError, TypeError, ValueError):
            raise CvstreamError(f"{where}: needs start, stop and count (or a list)") from None
        if count < 1:
            raise CvstreamError(f"{where}: count must be >= 1")
        return np.linspace(start, stop, count)
    try:
        arr = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        raise CvstreamError(f"{where}: expected a list of numbers") from None
    if arr.ndim != 1 or arr.size < 1:
        raise CvstreamError(f"{where}: expected a non-empty list of numbers")
    return arr


def _antennas(spec, where: str) -> np.ndarray:
    if isinstance(spec, dict):
        try:
            a = np.asarray(spec["from"], float)
            b = np.asarray(spec["to"], float)
            count = int(spec["count"])
        except (KeyError, TypeError, ValueError):
            raise CvstreamError(f"{where}: needs from, to and count (or a list of "
                                "[x, y, z])") from None
        if a.shape != (3,) or b.shape != (3,) or count < 1:
            raise CvstreamError(f"{where}: from/to are [x, y, z] and count >= 1")
        return a + np.linspace(0.0, 1.0, count)[:, None] * (b - a)
    try:
        arr = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        raise CvstreamError(f"{where}: expected a list of [x, y, z] positions") from None
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) < 1:
        raise CvstreamError(f"{where}: expected a list of [x, y, z] positions")
    return arr


def config_from_dict(data, source: str = "config") -> RadarConfig:
    """Build and check a configuration; errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise CvstreamError(f"{source}: a radar configuration is a mapping")
    missing = [k for k in ("tx", "rx", "frequencies", "grid") if k not in data]
    if missing:
        raise CvstreamError(f"{source}: missing field(s) {', '.join(missing)}")
    grid = data["grid"]
    if not isinstance(grid, dict) or set(grid) != {"x", "y", "z"}:
        raise CvstreamError(f"{source}: grid has exactly the axes x, y and z")
    cfg = RadarConfig(
        name=str(data.get("name", Path(source).stem)),
        tx=_antennas(data["tx"], f"{source}: tx"), rx=_antennas(data["rx"], f"{source}: rx"),
        freqs=_linspace(data["frequencies"], f"{source}: frequencies"),
        x=_linspace(grid["x"], f"{source}: grid.x"), y=_linspace(grid["y"], f"{source}: grid.y"),
        z=_linspace(grid["z"], f"{source}: grid.z"))
    if np.any(cfg.freqs <= 0):
        raise CvstreamError(f"{source}: frequencies must be positive")
    antennas = np.concatenate([cfg.tx, cfg.rx])
    dist = np.linalg.norm(cfg.voxels()[:, None, :] - antennas[None], axis=2)
    if dist.min() < 1e-3:
        raise CvstreamError(f"{source}: a voxel lies within 1 mm of an antenna")
    return cfg


def load_config(spec) -> RadarConfig:
    """A shipped configuration by name, a YAML/JSON file, or a mapping."""
    if isinstance(spec, RadarConfig):
        return spec
    if isinstance(spec, dict):
        return config_from_dict(spec)
    spec = str(spec)
    path = CONFIG_DIR / f"{spec}.yml" if spec in shipped_configs() else Path(spec)
    if not path.is_file():
        raise CvstreamError(f"radar config '{spec}' is neither a shipped configuration "
                            f"({', '.join(shipped_configs())}) nor an existing file")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parents
        raise CvstreamError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError
        first = str(exc).splitlines()[0]
        raise CvstreamError(f"{path}: not valid YAML: {first}") from None
    return config_from_dict(data, str(path))
