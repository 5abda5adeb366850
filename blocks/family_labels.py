"""The segmenter's family labels: the ``spectrum_family`` classifier run on each
detection's features (``family_features``), its probabilities calibrated by the contract's
temperature, ``unknown`` below a confidence."""
from __future__ import annotations

import numpy as np

from cvstream.errors import ParamError

from .family_features import FAMILY_FEATURES, family_features, family_probabilities
from .onnx_model import load_model, make_session


class FamilyLabels:
    """The classifier ``spec`` names (a ``spectrum_family`` model; a bad one is the block's
    ``family`` parameter's error) and the least calibrated probability ``min_confidence``
    that names a family; ``start`` opens its session (one thread), ``label`` names each
    detection's family."""

    def __init__(self, spec: str, min_confidence: float):
        self.path, contract = load_model(spec, "spectrum_family", param="family")
        if contract.inputs[0].item_shape != [FAMILY_FEATURES]:
            raise ParamError("family", f"'{self.path}' takes {contract.inputs[0].item_shape} "
                             f"features, this block gives {FAMILY_FEATURES}")
        self.families = contract.class_names
        self.temperature = float(contract.postprocess.get("temperature", 1.0))
        self.min_confidence = min_confidence
        self._session = None
        self._spectra: dict = {}

    def start(self) -> None:
        self._session = make_session(self.path, 1)
        self._spectra = {}   # the envelope statistics' block FFTs, by start (a new stream)

    def label(self, tracks: list) -> None:
        """Each detection's family from its features, where it has them (a fine PSD): its
        ``label`` (``unknown`` below ``min_confidence``, the best kept as ``guess``) and
        ``label_confidence``; the others keep the network's cell votes."""
        features = [family_features(t, self._spectra) for t in tracks]
        known = [i for i, f in enumerate(features) if f is not None]
        if not known:
            return
        x = np.stack([features[i] for i in known])[:, None, :]
        logits = self._session.run(None, {"features": x})[0][:, 0]
        for i, row in zip(known, family_probabilities(logits, self.temperature)):
            best = self.families[int(np.argmax(row))]
            tracks[i].label_confidence = float(row.max())
            if row.max() >= self.min_confidence:
                tracks[i].label = best
            else:
                tracks[i].label, tracks[i].guess = "unknown", best
