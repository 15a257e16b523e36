"""The methods by name (registry ``METHODS``), found automatically: one module a method in
:mod:`methods.plugins`, named after it (``rave-shifted`` -> ``rave_shifted.py``), defining ``METHOD``.

Modules are listed without being imported and load on first use. Each entry is a class with
``name``, ``kind`` (``clip-guided``: a :class:`methods.base.GuidanceMethod` trained by
:mod:`methods.guided_training`; ``trained baseline``: brings its own network, loss and ``training_loop``;
``training-free``: an enhancer with fixed parameters), ``needs_text``, ``source`` and ``training_loop``.
"""
from __future__ import annotations

import importlib
import pkgutil

from backlit_core.registry import Registry

PLUGINS = "methods.plugins"


def plugin_module(name: str) -> str:
    """The module that defines method ``name``."""
    return f"{PLUGINS}.{name.replace('-', '_')}"


def _discover() -> Registry:
    registry: Registry = Registry("method")
    package = importlib.import_module(PLUGINS)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            registry.register(info.name.replace("_", "-"), f"{PLUGINS}.{info.name}:METHOD")
    return registry


METHODS: Registry = _discover()
