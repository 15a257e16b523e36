"""The report's results loader: everything the report shows, read from the results folder alone."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from backlit_core.atomic import atomic_path, read_json, write_json
from benchmark.health import Flag, output_flags, stale_flags, training_flags
from benchmark.inference_timing import read_inference_timings
from benchmark.metrics import DIAGNOSTICS
from benchmark.report.speed import speed_ratios
from benchmark.results import ROOT, TRAIN_SUMMARY, ResultsFolder, is_seed_folder
from benchmark.stats import aggregate, best_systems, families, paired_comparison, seed_aggregate
from benchmark.system import System
from benchmark.training_logs import training_timing

METHOD_ORDER = ("input", "clip-lit", "latent-prompt", "rave", "rave-shifted")


def _any_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def system_sort_key(system: str, method: str = "", source: str = "") -> tuple:
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return ({"input": 0, "released": 1, "trained": 2}.get(source, 3), rank, system)


@dataclass
class Results:
    """The loaded results: long scores, aggregates, comparisons, costs, skips and provenance."""

    root: Path
    scores: pd.DataFrame
    aggregates: pd.DataFrame
    paired: pd.DataFrame
    metric_info: dict[str, dict] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    sidecars: dict[tuple[str, str], dict] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    inference: dict[str, dict] = field(default_factory=dict)
    ratios: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    perf: dict[str, Any] = field(default_factory=dict)
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)  # psnr_vs_input etc. (health, not quality)
    seed_aggregates: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-seed rows: tables/seeds.csv
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)  # best or not separated per (dataset, metric)
    families: pd.DataFrame = field(default_factory=pd.DataFrame)  # the test families behind paired.p_holm
    scenes: dict[str, dict[str, str]] = field(default_factory=dict)  # dataset -> image stem -> scene
    runs: dict[str, dict[str, dict]] = field(default_factory=dict)  # trained system -> seed -> train_summary.json
    health: dict[tuple[str, str], list[Flag]] = field(default_factory=dict)  # (dataset, system) -> flags
    health_notes: list[str] = field(default_factory=list)  # checks not done, and why
    labels: dict[str, str] = field(default_factory=dict)  # system -> where it comes from
    envelope: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # (dataset, system, metric) -> entry

    @property
    def datasets(self) -> list[str]:
        return sorted(self.scores["dataset"].unique()) if len(self.scores) else sorted({d for _, d in self.sidecars})

    def systems(self, dataset: str | None = None) -> list[str]:
        """Systems in display order (input, released, trained; by method)."""
        rows = {(s, m, src) for (s, d), meta in self.sidecars.items() if dataset in (None, d)
                for m, src in [(meta.get("method", ""), meta.get("source", ""))]}
        return [s for s, m, src in sorted(rows, key=lambda r: system_sort_key(*r))]

    def flags(self, dataset: str, system: str) -> list[Flag]:
        return self.health.get((dataset, system), [])

    def n_images(self, dataset: str) -> int:
        return int(self.scores[self.scores["dataset"] == dataset]["image"].nunique()) if len(self.scores) else 0

    def n_given(self, dataset: str, system: str) -> int | None:
        """The images ``system`` was given on ``dataset`` (scored ones are each metric's ``n``; the rest were
        dropped, listed under skipped); None where its scores record no count."""
        n = self.sidecars.get((system, dataset), {}).get("images")
        return int(n) if n is not None else None

    def n_scenes(self, dataset: str) -> int:
        images = self.scores[self.scores["dataset"] == dataset]["image"].unique() if len(self.scores) else []
        table = self.scenes.get(dataset, {})
        return len({table.get(i, i) for i in images})

    def metrics(self) -> list[str]:
        """Every metric seen (scored or unavailable), in display order."""
        from benchmark.metrics import metric_order

        return sorted({*self.metric_info, *self.unavailable}, key=metric_order)


def _skips_from_sidecar(system: str, dataset: str, meta: dict) -> list[dict[str, str]]:
    out = []
    if meta.get("skipped"):
        out.append({"kind": "method", "what": f"{system} on {dataset}", "reason": str(meta["skipped"])})
    for name, st in meta.get("metrics", {}).items():
        if st.get("status") == "skipped":
            out.append({"kind": "metric", "what": f"{name} on {dataset}", "reason": st.get("reason", "")})
    for f in meta.get("failed", []):
        out.append({"kind": "image", "what": f"{system}/{dataset}/{f.get('image')} ({f.get('metric')})",
                    "reason": f.get("error", "")})
    return out


def _enhanced_skips(folder: ResultsFolder) -> list[dict[str, str]]:
    out = []
    for system, dataset, meta in folder.enhanced_summaries():
        if meta.get("skipped"):
            out.append({"kind": "method", "what": f"{system} on {dataset} (enhance)", "reason": str(meta["skipped"])})
        for f in meta.get("failed", []):
            out.append({"kind": "image", "what": f"{system}/{dataset}: {f.get('file')}", "reason": f.get("error", "")})
    return out


def _training(folder: ResultsFolder) -> tuple[dict[str, dict], list[dict[str, str]]]:
    runs, skips = {}, []
    for run in folder.train_system_dirs():
        t = training_timing(run)
        runs[run.name] = t
        if t["status"] == "skipped":
            skips.append({"kind": "method", "what": f"{run.name} (training)", "reason": t.get("reason") or "skipped"})
    return runs, skips


def _scenes(root: Path, sidecars: dict[tuple[str, str], dict]) -> dict[str, dict[str, str]]:
    """dataset -> image stem -> scene id, from ``scenes.json`` in the dataset folder (beside or above
    the test inputs named in the scores sidecars, else ``datasets/data/<dataset>``); none: one scene each."""
    out: dict[str, dict[str, str]] = {}
    for (_, dataset), meta in sidecars.items():
        if dataset in out:
            continue
        inputs = Path(meta["inputs_dir"]) if meta.get("inputs_dir") else None
        places = [inputs.parent, inputs.parent.parent] if inputs else []
        for place in [*places, Path("datasets") / "data" / dataset]:
            table = _any_json(place / "scenes.json")
            if isinstance(table, dict):
                out[dataset] = {str(k): str(v) for k, v in table.items()}
                break
    return out


def _health(res: Results, dirs: dict[str, dict[str, Path]], project_root: Path) -> None:
    """Fill ``res.health`` (every scored system but the input) and ``res.health_notes``."""
    by_output = output_flags(res.diagnostics) if len(res.diagnostics) else {}
    by_training = training_flags(dirs)
    by_stale, note = stale_flags(res.root, project_root)
    res.health_notes.append(note)
    unchecked = []
    for system, dataset in sorted(res.sidecars):
        if system == "input":
            continue
        if (dataset, system) not in by_output and res.sidecars[(system, dataset)].get("images"):
            unchecked.append(f"{system} on {dataset}")
        res.health[(dataset, system)] = [*by_output.get((dataset, system), []), *by_training.get(system, []),
                                         *by_stale.get(system, [])]
    if unchecked:
        res.health_notes.append("no-effect and degenerate: not checked for " + ", ".join(unchecked)
                                + " (no diagnostic score rows: rescore with this version)")


SKIPPED_LABEL = "not trained (skipped): "


def system_label(system: str, summaries: dict[str, dict], profile: str | None) -> str:
    """Where a system comes from: released (whose checkpoint, paper settings) or trained here (how)."""
    source = System.parse(system)
    if source.source == "input":
        return "the unprocessed input"
    if source.source == "released":
        from benchmark.weights import RELEASED

        w = RELEASED.get(source.weights or "")
        return f"released ({w.repo}): {w.note}, paper settings" if w else "released checkpoint"
    if source.source != "trained":
        from methods.enhancer_api import training_free

        operator = training_free(system)
        return f"training-free operator: {operator.describe()}" if operator is not None else "external outputs"
    done = {k: v for k, v in summaries.items() if v.get("status") == "done"}
    if not done:
        reasons = {str(v.get("reason") or v.get("status") or "no summary") for v in summaries.values()}
        return SKIPPED_LABEL + ("; ".join(sorted(reasons)) or "no training run")
    first = next(iter(done.values()))
    sched = first.get("schedule_values") or {}
    encoders = [first.get("encoder"), first.get("identity_encoder")]
    iters = sorted({(v.get("iterations") or {}).get("total") for v in done.values()} - {None})
    seeds = sorted(k for k in done if k)
    parts = [f"profile {profile}" if profile else None,
             (f"encoder {encoders[0]}" + (f" (identity {encoders[1]})" if encoders[1] not in (None, encoders[0])
                                          else "")) if encoders[0] else None,
             f"schedule {first.get('schedule')}" if first.get("schedule") else None,
             f"{sched['crop']}-px crops" if sched.get("crop") else None,
             f"{'/'.join(map(str, iters))} iterations" if iters else None,
             (f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(seeds)}") if seeds else None]
    return "trained here: " + ", ".join(p for p in parts if p)


def _ratio_pairs(runs: dict[str, dict]) -> list[tuple[str, str]]:
    """Pairs (a, b) of finished runs of one regime, a the later method in METHOD_ORDER (rave vs clip-lit)."""
    done = [r for r, t in runs.items() if t["status"] == "done"]

    def rank(run: str) -> int:
        return max((i for i, m in enumerate(METHOD_ORDER) if run.startswith(m + "-")), default=-1)

    pairs = []
    for x, y in combinations(sorted(done, key=rank, reverse=True), 2):
        if System.parse(x).regime == System.parse(y).regime:
            pairs.append((x, y))
    return pairs


def load_results(root: str | Path = ROOT, *, n_boot: int = 1000, seed: int = 0,
                 perf_dir: str | Path | None = Path("perf") / "results", profile: str | None = None,
                 project_root: str | Path | None = None) -> Results:
    """Read scores, sidecars, training logs, timings and provenance; merge and aggregate scores; run the
    health checks (``stale`` against the DVC project at ``project_root``, default the working directory)
    and compare systems in their families (healthy ones apart from the input and flagged ones), and decide
    which system, if any, is best per metric."""
    root = Path(root)
    folder = ResultsFolder(root)
    diagnostics, scores = _read_all_scores(folder)
    sidecars = folder.score_sidecars()
    info, unavailable, skipped = _metric_info(sidecars)
    training, train_skips = _training(folder)
    skipped = train_skips + _enhanced_skips(folder) + skipped
    quality = {f"{p}{m}": bool(i["lower_better"]) for m, i in info.items() for p in ("", "val_", "eval_")}
    scenes = _scenes(root, sidecars)
    dirs = folder.train_runs()
    summaries = {s: {k: read_json(d / TRAIN_SUMMARY) for k, d in seeds.items()} for s, seeds in dirs.items()}
    skipped += _training_skips(dirs, summaries)
    res = Results(
        root=root, scores=scores, aggregates=aggregate(scores, scenes=scenes, n_boot=n_boot, seed=seed),
        paired=pd.DataFrame(), metric_info=info,
        unavailable=unavailable, skipped=skipped, sidecars=sidecars, training=training,
        inference=read_inference_timings(folder), ratios=speed_ratios(training, _ratio_pairs(training), quality),
        provenance=folder.provenance(), perf=_read_perf(perf_dir), diagnostics=diagnostics,
        seed_aggregates=seed_aggregate(scores, scenes=scenes, n_boot=n_boot, seed=seed), scenes=scenes, runs=summaries,
        envelope={(e["dataset"], e["system"], e["metric"]): e
                  for e in read_json(folder.envelope_file).get("entries", [])},
    )
    _health(res, dirs, Path(project_root) if project_root is not None else Path.cwd())
    res.paired = paired_comparison(scores, scenes=scenes, flagged=_flagged(res), n_boot=n_boot, seed=seed)
    res.families = families(res.paired)
    _decide(res, summaries, profile)
    return res


def _read_all_scores(folder: ResultsFolder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scores in ``folder`` split into (diagnostics, quality scores)."""
    scores = folder.all_scores()
    is_diag = scores["metric"].isin(list(DIAGNOSTICS))
    return scores[is_diag].reset_index(drop=True), scores[~is_diag].reset_index(drop=True)


def _metric_info(sidecars: dict[tuple[str, str], dict]
                 ) -> tuple[dict[str, dict], dict[str, str], list[dict[str, str]]]:
    """From the sidecars: (metric info, unavailable metrics with the reason, skips)."""
    info: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for (system, dataset), meta in sidecars.items():
        for name, st in meta.get("metrics", {}).items():
            if st.get("status") == "unavailable":
                unavailable.setdefault(name, st.get("reason", ""))
            elif name not in info:
                info[name] = {k: st.get(k) for k in ("lower_better", "mode", "score_range", "protocol", "protocol_details")}
        skipped += _skips_from_sidecar(system, dataset, meta)
    for name, reason in unavailable.items():
        if name not in info:
            skipped.append({"kind": "metric", "what": name, "reason": f"unavailable: {reason}"})
    return info, unavailable, skipped


def _training_skips(dirs: dict[str, dict[str, Path]], summaries: dict[str, dict[str, dict]]) -> list[dict[str, str]]:
    """A skip per seed whose training was skipped."""
    return [{"kind": "method", "what": f"{system} seed {k} (training)", "reason": str(t.get("reason") or "skipped")}
            for system, seeds in summaries.items() for k, t in seeds.items()
            if t.get("status") == "skipped" and is_seed_folder(dirs[system][k])]


def _read_perf(perf_dir: str | Path | None) -> dict[str, Any]:
    """``{stem: data}`` of the readable JSON files in ``perf_dir``."""
    perf_files = sorted(Path(perf_dir).glob("*.json")) if perf_dir is not None else []
    return {p.stem: data for p in perf_files if (data := _any_json(p)) is not None}


def _flagged(res: Results) -> dict[tuple[str, str], bool]:
    return {k: bool(v) for k, v in res.health.items()}


def _decide(res: Results, summaries: dict[str, dict[str, dict]], profile: str | None) -> None:
    """Set the best system per metric, the labels, and the best/health/label columns of the aggregates."""
    res.decisions = best_systems(res.aggregates, res.paired, _flagged(res))
    profile = profile or res.provenance.get("profile")
    res.labels = {s: system_label(s, summaries.get(s, {}), profile) for s in res.systems()}
    best = {(r.dataset, r.metric, r.best) for r in res.decisions.itertuples() if r.best}
    res.aggregates["best"] = [(r.dataset, r.metric, r.system) in best for r in res.aggregates.itertuples()]
    res.aggregates.insert(list(res.aggregates.columns).index("n") + 1, "n_given",
                          [res.n_given(r.dataset, r.system) for r in res.aggregates.itertuples()])
    res.aggregates["health"] = ["; ".join(f.text() for f in res.flags(r.dataset, r.system))
                                for r in res.aggregates.itertuples()]
    res.aggregates["label"] = res.aggregates["system"].map(res.labels).fillna("")


def _short(x: float) -> float | None:
    return None if math.isnan(x) else float(f"{x:.4g}")


def metrics_json(res: Results) -> dict:
    """The headline for ``dvc metrics show`` / ``dvc exp show``: per dataset, the best system of each metric
    (or why there is none), the flagged systems with their flags, and each system's mean per metric (4
    significant digits; intervals, tests and the rest are in ``tables/``)."""
    out: dict[str, Any] = {}
    for dataset in res.datasets:
        dec = res.decisions[res.decisions["dataset"] == dataset]
        flagged = [f"{s} ({', '.join(f.flag for f in res.flags(dataset, s))})" for s in res.systems(dataset)
                   if res.flags(dataset, s)]
        entry: dict[str, Any] = {"best": {r.metric: r.best or r.status for r in dec.itertuples()},
                                 "flagged": "; ".join(flagged) or "none"}
        agg = res.aggregates[res.aggregates["dataset"] == dataset]
        for system in res.systems(dataset):
            rows = agg[agg["system"] == system]
            if len(rows):
                entry[system] = {r.metric: _short(r.mean) for r in rows.itertuples()}
        out[dataset] = entry
    if res.unavailable:
        out["unavailable_metrics"] = ", ".join(res.unavailable)  # why: the report's skipped table
    return out


def write_tables(res: Results) -> list[Path]:
    """``metrics.json`` and under ``tables/``: ``aggregates.csv`` (one row per dataset, system and metric:
    images averaged over seeds, ``n`` scored of ``n_given``, scene-bootstrap CI, ``n_seeds`` and ``seed_sd``
    across seeds, ``health`` flags, ``best``, ``label``), ``seeds.csv`` (the same per seed of each trained system),
    ``paired.csv`` (every pair: its ``family``, t-test p, ``p_holm`` within the family, mean difference and
    rank-biserial effect with intervals), ``families.csv`` (each family: systems, tests, scenes, what it can show),
    ``decisions.csv`` (best or not separated per metric, and why) and ``speed_ratios.csv``."""
    folder = ResultsFolder(res.root)
    written = [folder.metrics_file, *(folder.table(f"{name}.csv") for name in
                                      ("aggregates", "paired", "speed_ratios", "seeds", "decisions", "families"))]
    write_json(written[0], metrics_json(res))
    for frame, path in ((res.aggregates, written[1]), (res.paired, written[2]), (pd.DataFrame(res.ratios), written[3]),
                        (res.seed_aggregates, written[4]), (res.decisions, written[5]), (res.families, written[6])):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    return written
