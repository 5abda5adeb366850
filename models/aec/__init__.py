"""Acoustic echo cancellation: scene synthesizer, metrics, classical baselines."""
