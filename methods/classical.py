"""Training-free classical baselines (baselines-spec section 2): the base of the scikit-image
``exposure`` operators, one plugin file each (:mod:`methods.plugins.gamma`, ``hist_eq``, ``clahe``).

- ``gamma``: ``exposure.adjust_gamma`` on RGB in [0, 1], gamma 0.5, gain 1 (``x ** 0.5``);
- ``hist-eq``: ``exposure.equalize_hist`` (256 bins) of the HSV value channel V = max(R, G, B);
- ``clahe``: ``exposure.equalize_adapthist`` of V, clip limit 0.01, tiles of 1/8 of each side,
  256 bins (scikit-image's defaults).

Equalising V and converting back keeps every pixel's hue and saturation (its RGB is scaled), so
colours are preserved. Each operator is deterministic, needs no weights, and is an enhancer (image
tensor in [0, 1] -> image tensor, see :mod:`methods.enhancer_api`); the identity is the ``input`` system.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch


@dataclass(frozen=True)
class Classical:
    """Base: apply :meth:`apply` to a 3 x H x W tensor on the CPU (numpy, float64)."""

    name: ClassVar[str]
    kind: ClassVar[str] = "training-free"
    training_loop: ClassVar[None] = None
    needs_text: ClassVar[bool] = False
    source: ClassVar[str]
    device: ClassVar[torch.device] = torch.device("cpu")

    def params(self) -> dict[str, object]:
        """The operator and its parameters, as recorded in summary.json and the report."""
        return {"operator": self.name, **asdict(self)}

    def describe(self) -> str:
        """One line for the report's protocol section."""
        raise NotImplementedError

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 float64 in [0, 1] -> the same."""
        raise NotImplementedError

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance a 3 x H x W tensor in [0, 1]; returns a float32 CPU tensor of the same shape."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        rgb = image.detach().cpu().double().clamp(0, 1).permute(1, 2, 0).numpy()
        out = np.clip(self.apply(rgb), 0.0, 1.0)
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).float()


def on_value(rgb: np.ndarray, equalise: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Replace the HSV value channel by ``equalise(V)``; hue and saturation are kept."""
    from skimage import color

    hsv = color.rgb2hsv(rgb)
    hsv[..., 2] = equalise(hsv[..., 2])
    return color.hsv2rgb(hsv)
