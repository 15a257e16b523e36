"""Everything the report shows, read from the results folder alone (see docs/architecture.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.atomic import atomic_path, write_json
from benchmark.evaluate import SCORE_COLUMNS, merge_scores, read_scores
from benchmark.stats import aggregate, paired_comparison
from benchmark.timing import read_inference_timings, speed_ratios, training_timing

METHOD_ORDER = ("input", "clip-lit", "latent-prompt", "rave", "rave-shifted")


def _any_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _json(path: Path) -> dict:
    data = _any_json(path)
    return data if isinstance(data, dict) else {}


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
    benchmarks: dict[str, Any] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.scores["dataset"].unique()) if len(self.scores) else sorted({d for _, d in self.sidecars})

    def systems(self, dataset: str | None = None) -> list[str]:
        """Systems in display order (input, released, trained; by method)."""
        rows = {(s, m, src) for (s, d), meta in self.sidecars.items() if dataset in (None, d)
                for m, src in [(meta.get("method", ""), meta.get("source", ""))]}
        return [s for s, m, src in sorted(rows, key=lambda r: system_sort_key(*r))]

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


def _enhanced_skips(root: Path) -> list[dict[str, str]]:
    out = []
    for path in sorted((root / "enhanced").glob("*/*/summary.json")):
        meta = _json(path)
        system, dataset = path.parent.parent.name, path.parent.name
        if meta.get("skipped"):
            out.append({"kind": "method", "what": f"{system} on {dataset} (enhance)", "reason": str(meta["skipped"])})
        for f in meta.get("failed", []):
            out.append({"kind": "image", "what": f"{system}/{dataset}: {f.get('file')}", "reason": f.get("error", "")})
    return out


def _training(root: Path) -> tuple[dict[str, dict], list[dict[str, str]]]:
    runs, skips = {}, []
    for run in sorted(p for p in (root / "train").glob("*") if p.is_dir()):
        t = training_timing(run)
        runs[run.name] = t
        if t["status"] == "skipped":
            skips.append({"kind": "method", "what": f"{run.name} (training)", "reason": t.get("reason") or "skipped"})
    return runs, skips


def _ratio_pairs(runs: dict[str, dict]) -> list[tuple[str, str]]:
    """Pairs (a, b) of finished runs of one regime, a the later method in METHOD_ORDER (rave vs clip-lit)."""
    done = [r for r, t in runs.items() if t["status"] == "done"]

    def rank(run: str) -> int:
        return max((i for i, m in enumerate(METHOD_ORDER) if run.startswith(m + "-")), default=-1)

    pairs = []
    for x, y in combinations(sorted(done, key=rank, reverse=True), 2):
        if x.rsplit("-", 1)[-1] == y.rsplit("-", 1)[-1]:
            pairs.append((x, y))
    return pairs


def load_results(root: str | Path = "results", *, n_boot: int = 1000, seed: int = 0,
                 benchmarks_dir: str | Path | None = Path("benchmarks") / "results") -> Results:
    """Read scores, sidecars, training logs, timings and provenance; merge and aggregate scores."""
    root = Path(root)
    scores = merge_scores(root) if (root / "scores").is_dir() else (
        read_scores(root / "scores.csv") if (root / "scores.csv").is_file() else pd.DataFrame(columns=SCORE_COLUMNS))
    sidecars: dict[tuple[str, str], dict] = {}
    for path in sorted((root / "scores").glob("*/[!.]*.json")):  # not temporaries of a killed writer
        meta = _json(path)
        sidecars[(path.parent.name, path.stem)] = meta
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
    training, train_skips = _training(root)
    skipped = train_skips + _enhanced_skips(root) + skipped
    quality = {f"{p}{m}": bool(i["lower_better"]) for m, i in info.items() for p in ("", "val_", "eval_")}
    bench_files = sorted(Path(benchmarks_dir).glob("*.json")) if benchmarks_dir is not None else []
    benchmarks = {p.stem: data for p in bench_files if (data := _any_json(p)) is not None}
    return Results(
        root=root, scores=scores, aggregates=aggregate(scores, n_boot=n_boot, seed=seed),
        paired=paired_comparison(scores), metric_info=info, unavailable=unavailable, skipped=skipped,
        sidecars=sidecars, training=training, inference=read_inference_timings(root),
        ratios=speed_ratios(training, _ratio_pairs(training), quality), provenance=_json(root / "provenance.json"),
        benchmarks=benchmarks,
    )


def metrics_json(res: Results) -> dict:
    """Nested ``{dataset: {system: {metric: {mean, ci_low, ci_high, n, lower_better}}}}`` for DVC."""
    out: dict[str, Any] = {}
    for r in res.aggregates.itertuples():
        out.setdefault(r.dataset, {}).setdefault(r.system, {})[r.metric] = {
            "mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n, "lower_better": bool(r.lower_better)}
    if res.unavailable:
        out["unavailable_metrics"] = dict(res.unavailable)
    return out


def write_tables(res: Results) -> list[Path]:
    """``scores.csv`` (merged), ``metrics.json`` and ``tables/{aggregates,paired,speed_ratios}.csv``."""
    written = [res.root / "metrics.json", res.root / "tables" / "aggregates.csv", res.root / "tables" / "paired.csv",
               res.root / "tables" / "speed_ratios.csv"]
    write_json(written[0], metrics_json(res))
    for frame, path in ((res.aggregates, written[1]), (res.paired, written[2]), (pd.DataFrame(res.ratios), written[3])):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    return written
