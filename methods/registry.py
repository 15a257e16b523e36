"""The trainable methods by name (registry ``METHODS``); entries load lazily."""
from __future__ import annotations

from benchmark.registry import Registry

METHODS: Registry = Registry("method")
METHODS.register("clip-lit", "methods.clip_lit:ClipLit")
METHODS.register("latent-prompt", "methods.latent_prompt:LatentPrompt")
METHODS.register("rave", "methods.rave:Rave")
METHODS.register("rave-shifted", "methods.rave:RaveShifted")
