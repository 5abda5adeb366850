"""The demo model: a small complex-valued causal denoiser for narrowband IQ."""
