"""Shared building blocks of ``methods`` and ``benchmark``: atomic writes, the name registry, image IO,
hashing, provenance, device resolution and project paths.

The lowest layer: it imports neither ``methods`` nor ``benchmark`` (``methods`` imports it, never
``benchmark``; ``benchmark`` imports both), checked by ``tests/test_layers.py``.
"""
