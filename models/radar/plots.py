"""Maximum-intensity projections of 3D radar images as PNG (matplotlib, Agg)."""
from __future__ import annotations

import numpy as np

from .geometry import RadarConfig

#: (title, axis projected away, horizontal axis, vertical axis)
VIEWS = (("front (x-y)", 2, "x", "y"), ("top (x-z)", 1, "x", "z"), ("side (y-z)", 0, "y", "z"))


def save_projections(images, path: str, cfg: RadarConfig | None = None, title: str = "",
                     labels: list[str] | None = None) -> str:
    """One row of front/top/side projections per image (an (nx, ny, nz) array or a list)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images = [np.asarray(images)] if np.ndim(images) == 3 else [np.asarray(i) for i in images]
    fig, axes = plt.subplots(len(images), 3, figsize=(11, 3.4 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        for col, (name, drop, h, v) in enumerate(VIEWS):
            ax = axes[row, col]
            mip = image.max(axis=drop).T          # rows: the vertical axis
            extent = None
            if cfg is not None:
                hv, vv = getattr(cfg, h), getattr(cfg, v)
                extent = (hv[0], hv[-1], vv[0], vv[-1])
            ax.imshow(mip, origin="lower", cmap="inferno", vmin=0, vmax=max(image.max(), 1e-12),
                      extent=extent, aspect="auto")
            unit = " (m)" if cfg is not None else " (voxel)"
            ax.set_xlabel(h + unit)
            ax.set_ylabel(v + unit)
            ax.set_title(name if not labels else f"{labels[row]}: {name}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
