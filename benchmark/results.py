"""The results folder: every path and file format under ``results/``, and the only place that spells them.

Layout (a system's folder is ``<system>``, or ``<system>/seed-<k>`` for a trained run with a training
seed: :func:`system_folder`):

- ``train/<system>/seed-<k>/``: a training run (``enhancer.pth``, ``checkpoint.pt``, ``train_log.csv``,
  ``train_summary.json``); its timings in ``timing/train/<system>/seed-<k>/`` (``train_timing.json``,
  ``train_steps.csv``), its provenance in ``provenance/train/<system>/seed-<k>.json``;
- ``enhanced/<system>/<dataset>/``: ``<stem>.png`` and ``summary.json``; its timing in
  ``timing/enhance/<system>/<dataset>.json``;
- ``scores/<system>/<dataset>.csv`` (columns :data:`SCORE_COLUMNS`) and its sidecar ``<dataset>.json``;
  ``scores.csv``: all of them merged;
- ``timing/inference.json`` (the time-inference stage), ``timing/<system>.json`` (``bench compare``),
  ``timing/pipeline.json`` (the last ``bench repro``'s timeline);
- ``provenance.json``, ``metrics.json``, ``tables/``, ``figures/``, ``report.md``, ``report.html``,
  ``code/`` (the stages' code fingerprints), ``experiments.csv`` (``bench experiments``).

Older results folders without the seed level (``train/<system>/`` holding the run itself) are read too.
This module imports no stage: stages, the report, ``bench verify`` and ``perf/`` go through it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from backlit_core.atomic import atomic_path, read_json, write_json
from benchmark.system import System

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path("results")  # the DVC pipeline's results folder, relative to the project
SEED_PREFIX = "seed-"
# the files of a training run directory, as methods/run_files.py writes them
CHECKPOINT, ENHANCER, TRAIN_LOG, TRAIN_SUMMARY, RUN_PROVENANCE = ("checkpoint.pt", "enhancer.pth", "train_log.csv",
                                                                "train_summary.json", "provenance.json")
TRAIN_TIMING, TRAIN_STEPS = "train_timing.json", "train_steps.csv"
ENHANCED_SUMMARY = "summary.json"  # an enhanced folder's record: done, failed, skipped and the settings
SCORE_COLUMNS = ["dataset", "system", "method", "source", "regime", "seed", "image", "metric", "protocol", "value",
                 "lower_better"]
PER_SYSTEM = ("train", "enhanced", "scores", "envelope")  # <kind>/<system>/...: what a stage made for one system
# outputs that hold timings or are computed from them: they differ from machine to machine by design
MACHINE_DEPENDENT = ("timing", "provenance", "report", "figures", "metrics.json", "tables", "scores.csv", "envelope.json")
REPORT_TABLES = "tables/report"  # the cells of report tables that have no file of their own
OTHER_RUNS = "tables/other-runs"  # copies of perf/results/*.json shown in the report


def system_folder(system: System) -> Path:
    """``<name>``, or ``<name>/seed-<k>`` for a trained run with a training seed."""
    return Path(system.name) if system.seed is None else Path(system.name) / f"{SEED_PREFIX}{system.seed}"


def is_seed_folder(path: str | Path) -> bool:
    """Whether ``path`` is a ``seed-<k>`` folder (a seeded run of a trained system)."""
    return Path(path).name.startswith(SEED_PREFIX)


def folder_seed(path: str | Path) -> int | None:
    """``k`` of a ``seed-<k>`` folder; None for any other folder."""
    name = Path(path).name
    rest = name[len(SEED_PREFIX):]
    return int(rest) if name.startswith(SEED_PREFIX) and rest.isdigit() else None


def seed_folders(folder: Path) -> list[Path]:
    """The ``seed-<k>`` folders in ``folder``, sorted by name."""
    return sorted(p for p in folder.glob(f"{SEED_PREFIX}*") if p.is_dir())


def machine_dependent_outputs(root: Path = ROOT) -> tuple[str, ...]:
    """Path prefixes (relative to the project, as dvc.lock records them) of the machine-dependent outputs."""
    return tuple(f"{root.as_posix()}/{name}" for name in MACHINE_DEPENDENT)


def system_of_output(path: Path, root: Path = ROOT) -> str | None:
    """The system whose per-system output ``path`` (relative to the project) is, e.g. ``rave-unpaired`` of
    ``results/train/rave-unpaired/seed-0``; None for any other path."""
    parts, base = path.parts, root.parts
    if len(parts) >= len(base) + 2 and parts[:len(base)] == base and parts[len(base)] in PER_SYSTEM:
        return parts[len(base) + 1]
    return None


def run_timing_files(run_dir: Path) -> tuple[Path, Path] | None:
    """(``train_timing.json``, ``train_steps.csv``) of run ``<results>/train/<system>/seed-<k>``, in
    ``<results>/timing/train/<system>/seed-<k>/``; None for an older seedless run directory (its timings, if
    any, are in the run directory itself)."""
    if not is_seed_folder(run_dir) or len(run_dir.parents) < 3:
        return None
    timing = ResultsFolder(run_dir.parents[2])._train_timing(Path(run_dir.parent.name, run_dir.name))
    return timing / TRAIN_TIMING, timing / TRAIN_STEPS


# ------------------------------------------------------------------------------------------- scores files
def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores CSV with text columns kept as text (image stems like ``0001`` stay strings)."""
    import pandas as pd

    text = {c: str for c in SCORE_COLUMNS if c not in ("value", "lower_better")}
    frame = pd.read_csv(path, dtype=text, keep_default_na=False, na_values={"value": [""]})
    if "seed" not in frame.columns:  # written before seeds were a column
        frame.insert(SCORE_COLUMNS.index("seed"), "seed", "")
    frame["lower_better"] = frame["lower_better"].astype(str).str.lower().eq("true")
    return frame


def write_scores(frame: pd.DataFrame, out_csv: Path) -> None:
    with atomic_path(out_csv) as tmp:
        frame[SCORE_COLUMNS].to_csv(tmp, index=False, float_format="%.6g")


def empty_scores() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=SCORE_COLUMNS)


def _concat_scores(paths: list[Path]) -> pd.DataFrame:
    """The non-empty scores CSVs ``paths``, one frame (an empty one when there are none)."""
    import pandas as pd

    frames = [f for f in map(read_scores, paths) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_scores()


def scores_sidecar(out_csv: Path) -> Path:
    """The sidecar of a scores CSV (metric status, failures, fingerprints)."""
    return out_csv.with_suffix(".json")


# ---------------------------------------------------------------------------------------- enhanced folders
def mark_skipped(out_dir: str | Path, reason: str) -> dict:
    """Record in ``out_dir``'s summary that a system has no outputs here, and why (old outputs go); the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):
        stale.unlink()
    summary = {"skipped": reason, "done": [], "failed": []}
    write_json(out_dir / ENHANCED_SUMMARY, summary)
    return summary


def read_enhanced_summary(folder: str | Path) -> dict:
    """An enhanced folder's summary (``{}`` when there is none)."""
    return read_json(Path(folder) / ENHANCED_SUMMARY)


@dataclass(frozen=True)
class ResultsFolder:
    """A results root (``results/``); its paths stay relative when ``root`` is, as DVC outputs need."""

    root: Path = ROOT

    # ---------------------------------------------------------------------------- one system's outputs
    def train_dir(self, system: System) -> Path:
        """The training run directory (checkpoint, enhancer.pth, train_summary.json)."""
        return self.train_root / system_folder(system)

    def train_timing_dir(self, system: System) -> Path:
        return self._train_timing(system_folder(system))

    def _train_timing(self, sub: Path) -> Path:
        return self.root / "timing" / "train" / sub

    def train_provenance_file(self, system: System) -> Path:
        return self.root / "provenance" / "train" / f"{system_folder(system).as_posix()}.json"

    def enhanced_dir(self, system: System, dataset: str) -> Path:
        return self.root / "enhanced" / system_folder(system) / dataset

    def enhance_timing_file(self, system: System, dataset: str) -> Path:
        return self.root / "timing" / "enhance" / system_folder(system) / f"{dataset}.json"

    def scores_csv(self, system: System, dataset: str) -> Path:
        return self.root / "scores" / system_folder(system) / f"{dataset}.csv"

    def envelope_dir(self, system: System) -> Path:
        """The scores of a trained run retrained under perturbed numerics (the ``envelope`` stage)."""
        return self.root / "envelope" / system_folder(system)

    def envelope_scores_csv(self, system: System, dataset: str) -> Path:
        return self.envelope_dir(system) / f"{dataset}.csv"

    # ------------------------------------------------------------------------------ the run's own files
    @property
    def inference_timing_file(self) -> Path:
        """``timing/inference.json``: every enhancer of the run, timed together."""
        return self.root / "timing" / "inference.json"

    @property
    def pipeline_timing_file(self) -> Path:
        """``timing/pipeline.json``: which worker ran each stage of the last ``bench repro``, when."""
        return self.root / "timing" / "pipeline.json"

    def system_timing_file(self, name: str) -> Path:
        """``timing/<system>.json``: one system timed by ``bench compare`` / ``bench time-inference``."""
        return self.root / "timing" / f"{name}.json"

    @property
    def provenance_file(self) -> Path:
        return self.root / "provenance.json"

    @property
    def merged_scores_file(self) -> Path:
        return self.root / "scores.csv"

    @property
    def envelope_file(self) -> Path:
        """``envelope.json``: the reproduction envelope ``bench verify`` judges a rerun against."""
        return self.root / "envelope.json"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.json"

    @property
    def experiments_file(self) -> Path:
        """``experiments.csv``: the DVC queue's experiments (``bench experiments``)."""
        return self.root / "experiments.csv"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def tables_dir(self) -> Path:
        """``tables/``: the report's raw data."""
        return self.root / "tables"

    def table(self, name: str) -> Path:
        return self.tables_dir / name

    def figure(self, name: str) -> Path:
        return self.root / "figures" / name

    def report_file(self, kind: Literal["md", "html"]) -> Path:
        return self.root / f"report.{kind}"

    def relative(self, path: Path) -> str:
        """``path`` relative to the results folder (a link from report.html that survives a copy)."""
        return path.relative_to(self.root).as_posix()

    # ------------------------------------------------------------------------------- training runs
    def train_summary(self, system: System) -> dict:
        """The run's ``train_summary.json`` (``status``: done, skipped with ``reason``, ...); ``{}`` if none."""
        return read_json(self.train_dir(system) / TRAIN_SUMMARY)

    @property
    def train_root(self) -> Path:
        """``train/``: a folder per trained system."""
        return self.root / "train"

    def train_system_dirs(self) -> list[Path]:
        """``train/<system>/`` of every trained system, sorted."""
        return sorted(p for p in self.train_root.glob("*") if p.is_dir())

    def train_runs(self) -> dict[str, dict[str, Path]]:
        """Trained systems -> seed label -> run directory (the health checks' input), from
        ``train/<system>/seed-<k>/`` or the older ``train/<system>/`` (label: its recorded seed, or "")."""
        runs: dict[str, dict[str, Path]] = {}
        for run in self.train_system_dirs():
            seeded = seed_folders(run)
            if seeded:
                runs[run.name] = {p.name.removeprefix(SEED_PREFIX): p for p in seeded}
            elif (run / TRAIN_SUMMARY).is_file() or (run / TRAIN_LOG).is_file():
                seed = read_json(run / TRAIN_SUMMARY).get("seed")
                runs[run.name] = {"" if seed is None else str(seed): run}
        return runs

    def trained_systems(self, name: str) -> list[System]:
        """The runs of trained system ``name``: one per ``seed-<k>`` folder, or the older seedless one."""
        base = System.parse(name)
        seeds = sorted(k for p in self.train_dir(base).glob(f"{SEED_PREFIX}*") if (k := folder_seed(p)) is not None)
        return [System.trained(base.method, base.regime, k) for k in seeds] or [base]

    def seed_run_dirs(self, method: str, regime: str, seeds: Iterable[int]) -> list[tuple[int, Path]]:
        """(seed, run directory) of each of ``seeds``; the older seedless run (as the first seed's) when none
        of them exists and it does."""
        seeds = list(seeds)
        runs = [(k, self.train_dir(System.trained(method, regime, k))) for k in seeds]
        base = self.train_dir(System.trained(method, regime))
        if not any(d.is_dir() for _, d in runs) and base.is_dir():
            return [(seeds[0], base)]
        return runs

    def enhancer_weights(self) -> list[Path]:
        """Every seeded training run's ``enhancer.pth`` (hashed into the run's provenance)."""
        return sorted(self.root.glob(f"train/*/{SEED_PREFIX}*/{ENHANCER}"))

    def mark_enhance_skipped(self, system: System, dataset: str, reason: str) -> dict:
        """Record that ``system`` has no outputs on ``dataset`` (old ones go), in its summary and timing file."""
        write_json(self.enhance_timing_file(system, dataset), {"skipped": reason})  # the stage's outputs exist
        return mark_skipped(self.enhanced_dir(system, dataset), reason)

    def enhanced_summaries(self) -> list[tuple[str, str, dict]]:
        """(system, dataset, summary) of every enhanced folder, the seedless ones first."""
        enhanced = self.root / "enhanced"
        out = []
        for path in sorted(enhanced.glob(f"*/*/{ENHANCED_SUMMARY}")) + \
                sorted(enhanced.glob(f"*/{SEED_PREFIX}*/*/{ENHANCED_SUMMARY}")):
            system = path.parents[2 if is_seed_folder(path.parent.parent) else 1].name
            out.append((system, path.parent.name, read_json(path)))
        return out

    def first_seed_enhanced_dir(self, system: System, dataset: str) -> tuple[Path, int | None]:
        """Where a system's enhanced images of ``dataset`` are: ``enhanced/<system>/seed-<k>/<dataset>`` (the
        lowest seed) or ``enhanced/<system>/<dataset>``; and that seed."""
        folder = self.enhanced_dir(system, dataset).parent
        seeds = sorted(k for p in folder.glob(f"{SEED_PREFIX}*") if (k := folder_seed(p)) is not None
                       and (p / dataset).is_dir())
        if seeds and system.source == "trained":
            return self.enhanced_dir(System.trained(system.method, system.regime, seeds[0]), dataset), seeds[0]
        return self.enhanced_dir(system, dataset), None

    # ------------------------------------------------------------------------------------------- scores
    def score_files(self) -> list[Path]:
        """Every ``scores/<system>/[seed-<k>/]<dataset>.csv``."""
        scores = self.root / "scores"
        return sorted([*scores.glob("*/[!.]*.csv"), *scores.glob(f"*/{SEED_PREFIX}*/[!.]*.csv")])

    def merged_scores(self) -> pd.DataFrame:
        """Every system's scores, merged into ``scores.csv``."""
        merged = _concat_scores(self.score_files())
        write_scores(merged, self.merged_scores_file)
        return merged

    def all_scores(self) -> pd.DataFrame:
        """:meth:`merged_scores`; a results folder without ``scores/`` gives its ``scores.csv`` (or none)."""
        if (self.root / "scores").is_dir():
            return self.merged_scores()
        return read_scores(self.merged_scores_file) if self.merged_scores_file.is_file() else empty_scores()

    def envelope_scores(self) -> pd.DataFrame:
        """Every ``envelope/<system>/seed-<k>/<dataset>.csv``: the perturbed-numerics reruns' scores."""
        return _concat_scores(sorted((self.root / "envelope").glob(f"*/{SEED_PREFIX}*/[!.]*.csv")))

    def seed_score_files(self, system: str, dataset: str) -> list[Path]:
        """The scores CSVs of every seed of trained system ``system`` on ``dataset``."""
        return sorted((self.root / "scores" / system).glob(f"{SEED_PREFIX}*/{dataset}.csv"))

    def score_sidecars(self) -> dict[tuple[str, str], dict]:
        """``{(system, dataset): sidecar}``; a system's own sidecar wins over its seeds'."""
        sidecars: dict[tuple[str, str], dict] = {}
        scores = self.root / "scores"
        for path in sorted(scores.glob("*/[!.]*.json")):  # not temporaries of a killed writer
            sidecars[(path.parent.name, path.stem)] = read_json(path)
        for path in sorted(scores.glob(f"*/{SEED_PREFIX}*/[!.]*.json")):
            sidecars.setdefault((path.parent.parent.name, path.stem), read_json(path))
        return sidecars

    # -------------------------------------------------------------------------------- timing, provenance
    def inference_run(self) -> dict | None:
        """``timing/inference.json`` as the time-inference stage writes it (None: absent or older format)."""
        doc = read_json(self.inference_timing_file)
        return doc if isinstance(doc.get("systems"), list) else None

    def system_timings(self) -> dict[str, dict]:
        """System -> its ``timing/<system>.json`` record (the files of ``bench compare``)."""
        out: dict[str, dict] = {}
        for path in sorted((self.root / "timing").glob("[!.]*.json")):
            rec = read_json(path)
            if "sizes" in rec:
                out[str(rec.get("system") or path.stem)] = rec
        return out

    def provenance(self) -> dict:
        return read_json(self.provenance_file)

    def write_provenance(self, *, seeds: Iterable[int] = (), bootstrap_seed: int | None = None,
                         weights: Iterable[str | Path] = (), **extra: object) -> dict:
        """Write ``provenance.json`` of the run (the one writer of it): ``seeds`` are the training seeds,
        ``bootstrap_seed`` the confidence intervals' seed."""
        from backlit_core.provenance import write_provenance

        return write_provenance(self.provenance_file, role="run", seeds=list(seeds), bootstrap_seed=bootstrap_seed,
                                weights=weights, **extra)
