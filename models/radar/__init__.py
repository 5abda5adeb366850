"""Near-field MIMO radar imaging: configurations, the factorized Born operator, image
formation (back-projection, Kirchhoff, adjoint), the scene synthesizer and evaluation (numpy
only); the learned reconstructions (``network``, ``train``) need torch."""
