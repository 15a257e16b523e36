"""The results folder: scores, training status, health inputs and provenance of one run, read and written
through :class:`ResultsStore` (paths come from :class:`~benchmark.system.System`)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from backlit_core.atomic import read_json, write_json
from benchmark.system import System

if TYPE_CHECKING:
    import pandas as pd

PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class ResultsStore:
    """A results root (``results/``); its paths stay relative when ``root`` is, as DVC outputs need."""

    root: Path = Path("results")

    def train_summary(self, system: System) -> dict:
        """The run's ``train_summary.json`` (``status``: done, skipped with ``reason``, ...); ``{}`` if none."""
        return read_json(system.train_dir(self.root) / "train_summary.json")

    def train_runs(self) -> dict[str, dict[str, Path]]:
        """Trained systems -> seed label -> run directory (the health checks' input), from
        ``train/<system>/seed-<k>/`` or the older ``train/<system>/`` (label: its recorded seed, or "")."""
        runs: dict[str, dict[str, Path]] = {}
        for run in sorted(p for p in (self.root / "train").glob("*") if p.is_dir()):
            seeded = sorted(p for p in run.glob("seed-*") if p.is_dir())
            if seeded:
                runs[run.name] = {p.name.removeprefix("seed-"): p for p in seeded}
            elif (run / "train_summary.json").is_file() or (run / "train_log.csv").is_file():
                seed = read_json(run / "train_summary.json").get("seed")
                runs[run.name] = {"" if seed is None else str(seed): run}
        return runs

    def trained_systems(self, name: str) -> list[System]:
        """The runs of trained system ``name``: one per ``seed-<k>`` folder, or the older seedless one."""
        base = System.parse(name)
        seeds = sorted(int(p.name[5:]) for p in base.train_dir(self.root).glob("seed-*") if p.name[5:].isdigit())
        return [System.trained(base.method, base.regime, k) for k in seeds] or [base]

    def mark_enhance_skipped(self, system: System, dataset: str, reason: str) -> dict:
        """Record that ``system`` has no outputs on ``dataset`` (old ones go), in its summary and timing file."""
        from benchmark.enhance import mark_skipped

        write_json(system.enhance_timing_file(self.root, dataset), {"skipped": reason})  # the stage's outputs exist
        return mark_skipped(system.enhanced_dir(self.root, dataset), reason)

    def scores(self, system: System, dataset: str) -> pd.DataFrame:
        from benchmark.evaluate import read_scores

        return read_scores(system.scores_csv(self.root, dataset))

    def merged_scores(self) -> pd.DataFrame:
        """Every system's scores, merged into ``scores.csv``."""
        from benchmark.evaluate import merge_scores

        return merge_scores(self.root)

    def provenance(self) -> dict:
        return read_json(self.root / PROVENANCE)

    def write_provenance(self, *, seeds: Iterable[int] = (), bootstrap_seed: int | None = None,
                         weights: Iterable[str | Path] = (), **extra: object) -> dict:
        """Write ``provenance.json`` of the run (the one writer of it): ``seeds`` are the training seeds,
        ``bootstrap_seed`` the confidence intervals' seed."""
        from backlit_core.provenance import write_provenance

        return write_provenance(self.root / PROVENANCE, role="run", seeds=list(seeds), bootstrap_seed=bootstrap_seed,
                                weights=weights, **extra)
