"""A system of the benchmark: what produced a set of enhanced images, and where its results live.

The id string (:attr:`System.name`) is ``<method>-<regime>`` for a run trained here (one per
``seed``, under ``<name>/seed-<k>``), ``released-<weights>`` for released weights, the operator's
name for a training-free method, ``input`` for the unprocessed inputs and any other name for
outputs made elsewhere. :meth:`System.parse` reads it back; no other module formats or parses it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Source = Literal["trained", "released", "training-free", "input", "external"]
REGIMES = ("paired", "unpaired")
RELEASED_PREFIX = "released-"


@dataclass(frozen=True)
class System:
    """``weights``: the released weights' name or the operator's name (``None`` for a trained run, whose
    weights are its run directory, and for ``input``/external outputs)."""

    method: str
    source: Source
    regime: str = ""
    seed: int | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and self.source != "trained":
            raise ValueError(f"{self.name}: only a trained system has a training seed (got {self.seed})")

    @classmethod
    def trained(cls, method: str, regime: str, seed: int | None = None) -> System:
        return cls(method, "trained", regime, seed)

    @classmethod
    def released(cls, weights: str) -> System:
        """Released weights by name or alias (``bench weights list``); method and regime from their record."""
        from benchmark.weights import ALIASES, RELEASED

        w = RELEASED.get(ALIASES.get(weights, weights))
        return cls(w.method, "released", w.regime, weights=w.name) if w else cls(weights, "released", weights=weights)

    @classmethod
    def parse(cls, name: str, seed: int | None = None) -> System:
        """The system of an id string; ``seed`` is the training seed of a trained run."""
        if name == "input":
            return cls("input", "input", seed=seed)
        if name.startswith(RELEASED_PREFIX):
            return replace(cls.released(name.removeprefix(RELEASED_PREFIX)), seed=seed)
        for regime in REGIMES:
            if name.endswith(f"-{regime}"):
                return cls.trained(name.removesuffix(f"-{regime}"), regime, seed)
        from methods.enhancer_api import training_free

        if training_free(name) is not None:  # loads that operator's plugin only
            return cls(name, "training-free", seed=seed, weights=name)
        return cls(name, "external", seed=seed)

    @property
    def name(self) -> str:
        """The id string (the results folder name)."""
        if self.source == "trained":
            return f"{self.method}-{self.regime}"
        if self.source == "released":
            return f"{RELEASED_PREFIX}{self.weights}"
        return self.method

    @property
    def results_sub(self) -> Path:
        """``<name>``, or ``<name>/seed-<k>`` for a seeded trained run."""
        return Path(self.name) if self.seed is None else Path(self.name) / f"seed-{self.seed}"

    def info(self) -> dict[str, str]:
        """The ``method``, ``source`` and ``regime`` columns of a score row."""
        return {"method": self.method, "source": self.source, "regime": self.regime}

    def enhanced_dir(self, results: Path, dataset: str) -> Path:
        return results / "enhanced" / self.results_sub / dataset

    def enhance_timing_file(self, results: Path, dataset: str) -> Path:
        return results / "timing" / "enhance" / self.results_sub / f"{dataset}.json"

    def scores_csv(self, results: Path, dataset: str) -> Path:
        return results / "scores" / self.results_sub / f"{dataset}.csv"

    def train_dir(self, results: Path) -> Path:
        """The training run directory (checkpoint, enhancer.pth, train_summary.json)."""
        return results / "train" / self.results_sub

    def train_timing_dir(self, results: Path) -> Path:
        return results / "timing" / "train" / self.results_sub

    def train_provenance_file(self, results: Path) -> Path:
        return results / "provenance" / "train" / f"{self.results_sub.as_posix()}.json"
