"""One fixed colour per system, the same in every figure of every report, and grey for flagged systems.

A system's hue is its method's, by the method's place in the method registry (CLIP-guided methods first,
then trained baselines, then training-free operators; a name the registry does not know gets a hue from a
stable hash of it); the variants of one
method (its released weights in the order of the weights registry, then its trained paired and unpaired
runs) are shades of that hue, darkest first. The colour-blind palette's grey is left out: grey means
flagged (:data:`FLAGGED`), dark grey the unprocessed input (:data:`INPUT`).
"""
from __future__ import annotations

import functools
import hashlib

from benchmark.system import REGIMES, System

FLAGGED = (0.74, 0.74, 0.74)  # every mark of a flagged system
FLAGGED_HATCH = "///"
INPUT = (0.3, 0.3, 0.3)
DARKEST, LIGHTEST = -0.4, 0.25  # the shades of a method's variants: mixed with black (<0) up to white (>0)
HUE_ORDER = (0, 1, 2, 3, 4, 8, 5, 9, 6)  # seaborn's colour-blind palette without its grey (7), most distinct first


@functools.cache
def _hues() -> tuple[tuple[float, float, float], ...]:
    import seaborn as sns

    palette = sns.color_palette("colorblind", 10)
    return tuple(tuple(palette[i]) for i in HUE_ORDER)


@functools.cache
def _methods() -> tuple[str, ...]:
    """The registry's methods, its CLIP-guided ones first, then trained baselines, then training-free ones."""
    from methods.registry import METHODS

    kinds = ("clip-guided", "trained baseline", "training-free")
    rank = {n: kinds.index(k) if (k := getattr(METHODS.get(n), "kind", None)) in kinds else len(kinds)
            for n in METHODS.names()}
    return tuple(sorted(METHODS.names(), key=lambda n: (rank[n], METHODS.names().index(n))))


def _variants(method: str) -> list[str]:
    """Every system name of ``method`` the registries know, in a fixed order."""
    from benchmark.weights import RELEASED

    released = [System.released(w).name for w, rec in RELEASED.items() if rec.method == method]
    trained = [System.trained(method, r).name for r in REGIMES] if method in _methods() else []
    return released + trained or [method]


def _shade(rgb: tuple[float, ...], t: float) -> tuple[float, float, float]:
    """``rgb`` mixed with black (``t`` < 0) or white (``t`` > 0) by ``|t|``."""
    r, g, b = rgb[:3]
    if t < 0:
        return r * (1 + t), g * (1 + t), b * (1 + t)
    return r + (1 - r) * t, g + (1 - g) * t, b + (1 - b) * t


def system_colour(system: str) -> tuple[float, float, float]:
    """The colour of ``system`` in every figure (see the module docstring)."""
    parsed = System.parse(system)
    if parsed.source == "input":
        return INPUT
    hues, methods = _hues(), _methods()
    digest = int(hashlib.sha256(parsed.method.encode()).hexdigest(), 16)
    hue = hues[methods.index(parsed.method) % len(hues) if parsed.method in methods else digest % len(hues)]
    variants = _variants(parsed.method)
    if len(variants) < 2 or system not in variants:
        return _shade(hue, 0.0)
    return _shade(hue, DARKEST + (LIGHTEST - DARKEST) * variants.index(system) / (len(variants) - 1))


def colour(system: str, flagged: bool) -> tuple[float, float, float]:
    """:data:`FLAGGED` for a flagged system, else :func:`system_colour`."""
    return FLAGGED if flagged else system_colour(system)
