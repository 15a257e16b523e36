"""The methods by name (registry ``METHODS``); entries load lazily.

Each entry is a class with ``name``, ``kind`` (``clip-guided``: a :class:`methods.base.GuidanceMethod`
trained by :mod:`methods.trainer`; ``trained baseline``: brings its own network, loss and
``train()``; ``training-free``: an enhancer with fixed parameters), ``needs_text`` and ``source``.
"""
from __future__ import annotations

from backlit_core.registry import Registry

METHODS: Registry = Registry("method")
METHODS.register("clip-lit", "methods.clip_lit:ClipLit")
METHODS.register("latent-prompt", "methods.latent_prompt:LatentPrompt")
METHODS.register("rave", "methods.rave:Rave")
METHODS.register("rave-shifted", "methods.rave:RaveShifted")
METHODS.register("zero-dce", "methods.zero_dce_method:ZeroDCE")
METHODS.register("gamma", "methods.classical:Gamma")
METHODS.register("hist-eq", "methods.classical:HistEq")
METHODS.register("clahe", "methods.classical:Clahe")
