"""Spectrum segmentation: wideband IQ synthesizer, labels, evaluation (numpy only)."""
