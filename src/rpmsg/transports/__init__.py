"""Transports: one module per scheme, each registering a Link factory when imported."""
