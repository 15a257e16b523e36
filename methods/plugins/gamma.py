"""``gamma``: ``exposure.adjust_gamma`` on RGB in [0, 1] (baselines-spec 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from methods.classical import Classical


@dataclass(frozen=True)
class Gamma(Classical):
    name: ClassVar[str] = "gamma"
    source: ClassVar[str] = "scikit-image exposure.adjust_gamma"
    gamma: float = 0.5
    gain: float = 1.0

    def describe(self) -> str:
        return f"gamma {self.gamma} on RGB (x ** {self.gamma}), gain {self.gain}"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        from skimage import exposure

        return exposure.adjust_gamma(rgb, gamma=self.gamma, gain=self.gain)


METHOD = Gamma
