"""``clahe``: ``exposure.equalize_adapthist`` (CLAHE) of the HSV value channel (baselines-spec 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from methods.classical import Classical, on_value


@dataclass(frozen=True)
class Clahe(Classical):
    name: ClassVar[str] = "clahe"
    source: ClassVar[str] = "scikit-image exposure.equalize_adapthist"
    channel: str = "hsv-value"
    clip_limit: float = 0.01
    kernel_size: int | None = None  # None: 1/8 of height and width (scikit-image's default)
    nbins: int = 256

    def describe(self) -> str:
        tiles = "1/8 of each side" if self.kernel_size is None else f"{self.kernel_size} px"
        return f"CLAHE of HSV V, clip limit {self.clip_limit}, tiles {tiles}, {self.nbins} bins"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        from skimage import exposure

        return on_value(rgb, lambda v: exposure.equalize_adapthist(v, kernel_size=self.kernel_size,
                                                                    clip_limit=self.clip_limit, nbins=self.nbins))


METHOD = Clahe
