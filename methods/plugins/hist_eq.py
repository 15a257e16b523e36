"""``hist-eq``: ``exposure.equalize_hist`` of the HSV value channel (baselines-spec 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from methods.classical import Classical, on_value


@dataclass(frozen=True)
class HistEq(Classical):
    name: ClassVar[str] = "hist-eq"
    source: ClassVar[str] = "scikit-image exposure.equalize_hist"
    channel: str = "hsv-value"
    nbins: int = 256

    def describe(self) -> str:
        return f"global histogram equalisation of HSV V, {self.nbins} bins"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        from skimage import exposure

        return on_value(rgb, lambda v: exposure.equalize_hist(v, nbins=self.nbins))


METHOD = HistEq
