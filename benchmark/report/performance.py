"""The report's cost section, from this results folder only, and figures of other runs, labelled.

One source of truth per figure: every ms/MP of this run comes from ``results/timing/inference.json``
(all enhancer systems timed together, one machine, one sample set each; :func:`inference_method`
says so in one sentence wherever timings are shown); training cost per method
and seed from ``results/timing/train`` (or the older train logs), compared at equal iteration counts.
``perf/results/*.json`` (the ``perf/bench_*.py`` scripts) are *other runs*, from other
commits and often other machines: shown only in their own section, each with its commit and machine,
and copied into ``results/tables/other-runs/`` so that their links work wherever results/ goes.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from backlit_core.atomic import atomic_path, write_json
from benchmark.inference_timing import pool_seeds, read_inference_timings
from benchmark.report.speed import convergence, speed_ratios
from benchmark.report.tables import Table, fmt
from benchmark.report.timing_text import inference_method, training_method
from benchmark.results import OTHER_RUNS, ResultsFolder
from benchmark.system import System

DEFAULT_DIR = Path("perf") / "results"
METHOD_ORDER = ("clip-lit", "latent-prompt", "rave", "rave-shifted")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


# -------------------------------------------------------------------------------- inference
def network_groups(records: dict[str, dict]) -> list[list[str]]:
    """Systems grouped by the network they run: same kind, parameters and FLOPs per pixel, timed on the same
    device with the same tile and precision (the released and trained CLIP-LIT, latent-prompt and RAVE
    models are one network with other weights): their ms/MP differ by timing noise alone. Operators and
    records without FLOPs stay alone."""
    groups: dict[tuple, list[str]] = {}
    for system, r in records.items():
        key: tuple = (system,)
        if r.get("kind") == "network" and r.get("flops_per_pixel"):
            key = tuple(r.get(k) for k in ("params", "flops_per_pixel", "device", "machine", "tile", "precision"))
        groups.setdefault(key, []).append(system)
    return list(groups.values())


def pooled(records: list[dict]) -> dict[str, Any]:
    """One record of the systems of one network: their samples pooled per size (median, p25, p75)."""
    return pool_seeds(records)


def inference_table(root: Path) -> Table | None:
    """One row per enhancer system (seeds' samples pooled): ms/MP median and p25–p75 at the reference size,
    the median at every size, parameters and FLOPs; how and where they were timed, and which systems run
    one network, in the notes."""
    folder = ResultsFolder(root)
    run = folder.inference_run()
    records = read_inference_timings(folder)
    if not records:
        return None
    table = Table(["system", "seeds", "ms/MP median ↓", "ms/MP p25–p75", "samples", "ms/MP median by size",
                   "parameters", "FLOPs/pixel"], [])
    for system, r in sorted(records.items()):
        seeds = r.get("seeds") or ([r["seed"]] if r.get("seed") is not None else [])
        by_size = "; ".join(f"{s['megapixels']:g} MP: {fmt(s['ms_per_mp_median'])}" for s in r["sizes"])
        table.rows.append([system, ", ".join(map(str, seeds)) or "–", fmt(r["ms_per_mp_median"]),
                           f"{fmt(r['ms_per_mp_p25'])}–{fmt(r['ms_per_mp_p75'])}", str(r.get("ms_per_mp_n") or "–"),
                           by_size, f"{r['params']:,}" if r.get("params") else "–",
                           f"{r['flops_per_pixel']:,}" if r.get("flops_per_pixel") else "–"])
    table.notes.append(str(inference_method(root)))
    for group in network_groups(records):
        if len(group) > 1:
            p = pooled([records[s] for s in group])
            table.notes.append(f"One network ({records[group[0]]['params']:,} parameters, "
                               f"{records[group[0]]['flops_per_pixel']:,} FLOPs/pixel): {', '.join(sorted(group))}; "
                               f"their rows differ by timing noise alone; pooled: {fmt(p['ms_per_mp_median'])} ms/MP "
                               f"[{fmt(p['ms_per_mp_p25'])}–{fmt(p['ms_per_mp_p75'])}] (the figures show this one "
                               "point)")
    if run is not None:
        table.notes += [f"not timed: {m['system']}{'' if m.get('seed') is None else ' seed ' + str(m['seed'])}: "
                        f"{m['reason']}" for m in run.get("not_timed") or []]
        table.source = folder.relative(folder.inference_timing_file)
    return table


# --------------------------------------------------------------------------------- training
def _by_system(runs: dict[str, dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs.values():
        out.setdefault(r["system"], []).append(r)
    return out


def _mean_sd(values: list[float], unit: str = "") -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0]) + unit
    return f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values), statistics.mean(values))}{unit}"


def _phase_counts(runs: list[dict]) -> str:
    phases = list(dict.fromkeys(p for r in runs for p in r["phases"]))
    parts = []
    for p in phases:
        counts = sorted({r["phases"][p].get("iterations") for r in runs if p in r["phases"]} - {None})
        parts.append(f"{p} {counts[0]}" if len(counts) == 1 else f"{p} {counts[0]}–{counts[-1]}")
    return "; ".join(parts) or "–"


def training_rows(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per run (system, seed): status, wall time, iterations and s/iter by phase, convergence."""
    rows = []
    for r in runs.values():
        conv = convergence(r) if r["status"] == "done" else None
        rows.append({"system": r["system"], "seed": r.get("seed"), "status": r["status"], "reason": r.get("reason"),
                     "wall_s": r.get("wall_s"), "iterations": r.get("iterations"), "machine": r.get("machine"),
                     **{f"{p}_iterations": v.get("iterations") for p, v in r["phases"].items()},
                     **{f"{p}_s_per_iter": v.get("s_per_iter") for p, v in r["phases"].items()},
                     "enhance_s_to_90pct_guidance_drop": conv["seconds"] if conv else None,
                     "enhance_it_to_90pct_guidance_drop": conv["iterations"] if conv else None,
                     "peak_memory_mb": r.get("peak_memory_mb")})
    return pd.DataFrame(rows)


def training_table(runs: dict[str, dict], root: Path) -> Table:
    """Per system over its seeds: iterations and median s/iter by phase, training time, enhance-phase
    time to 90% of the guidance-loss drop, peak memory. Raw per-run rows: tables/training_runs.csv."""
    table = Table(["system", "seeds", "status", "iterations by phase", "s/iter by phase (median step)",
                   "training time (s)", "enhance: s to 90% of guidance drop", "peak memory (MB)"], [])
    for system, group in _by_system(runs).items():
        done = [r for r in group if r["status"] == "done"]
        seeds = ", ".join(str(r["seed"]) for r in group if r.get("seed") is not None) or "–"
        status = "; ".join(sorted({r["status"] + (f" ({r['reason']})" if r.get("reason") else "") for r in group}))
        if not done:
            table.rows.append([system, seeds, status, "–", "–", "–", "–", "–"])
            continue
        phases = list(dict.fromkeys(p for r in done for p in r["phases"]))
        s_iter = "; ".join(f"{p} {fmt(statistics.median(v))}" for p in phases
                           if (v := [r["phases"][p]["s_per_iter"] for r in done if p in r["phases"]
                                     and r["phases"][p].get("s_per_iter") is not None]))
        conv = [c for r in done if (c := convergence(r))]
        conv_cell = (f"{_mean_sd([c['seconds'] for c in conv])} (iteration "
                     f"{statistics.median(c['iterations'] for c in conv):g} of {conv[0]['of_iterations']})") if conv else "–"
        table.rows.append([system, seeds, status, _phase_counts(done), s_iter or "–",
                           _mean_sd([r["wall_s"] for r in done if r.get("wall_s") is not None]), conv_cell,
                           _mean_sd([r["peak_memory_mb"] for r in done if r.get("peak_memory_mb") is not None])])
    table.notes.append("Values: mean ± SD over seeds (median over seeds for s/iter). The trainer logs no validation "
                       "metric while enhancing, so time to quality is measured on the enhancer's own guidance loss: "
                       "enhance-phase seconds until its rolling median first covers 90% of its drop over the phase.")
    if (text := training_method(runs)):
        table.notes.append(text)
    folder = ResultsFolder(root)
    _write_csv(training_rows(runs), folder.table("training_runs.csv"))
    table.source = folder.relative(folder.table("training_runs.csv"))
    return table


def _rank(system: str) -> int:
    method = System.parse(system).method
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def ratio_rows(runs: dict[str, dict]) -> list[dict[str, Any]]:
    """:func:`~benchmark.report.speed.speed_ratios` of every pair of finished systems of one regime, seed by seed
    (a is the later method: rave against clip-lit)."""
    done = {k: r for k, r in runs.items() if r["status"] == "done"}
    systems = sorted({r["system"] for r in done.values()}, key=_rank, reverse=True)
    out = []
    for i, a in enumerate(systems):
        for b in systems[i + 1:]:
            if System.parse(a).regime != System.parse(b).regime:
                continue
            seeds_a = {r.get("seed"): k for k, r in done.items() if r["system"] == a}
            seeds_b = {r.get("seed"): k for k, r in done.items() if r["system"] == b}
            for seed in [s for s in seeds_a if s in seeds_b]:
                for row in speed_ratios(done, [(seeds_a[seed], seeds_b[seed])]):
                    out.append({**row, "a": a, "b": b, "seed": seed})
    return out


def ratio_table(runs: dict[str, dict], root: Path) -> Table | None:
    """Speed ratios b / a per quantity, median over seeds [range], same machine and equal iteration counts."""
    rows = ratio_rows(runs)
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    folder = ResultsFolder(root)
    _write_csv(frame, folder.table("training_ratios.csv"))
    table = Table(["a", "b", "quantity", "a (median over seeds)", "b (median over seeds)", "b / a", "seeds"], [],
                  source=folder.relative(folder.table("training_ratios.csv")))
    for (a, b, what), g in frame.groupby(["a", "b", "quantity"], sort=False):
        ratios = g["ratio"].dropna()
        notes = sorted(set(g["note"]) - {""})
        if len(ratios):
            lo, hi = ratios.min(), ratios.max()
            cell = f"{ratios.median():.2f}×" + (f" [{lo:.2f}–{hi:.2f}]" if f"{lo:.2f}" != f"{hi:.2f}" else "")
        else:
            cell = "; ".join(notes) or "–"
        table.rows.append([a, b, what, fmt(g["a_value"].median()), fmt(g["b_value"].median()), cell,
                           ", ".join(str(s) for s in g["seed"] if s is not None) or "–"])
    table.notes.append("b / a > 1: a is faster. s/iter over the first n iterations of each phase in both runs (n the "
                       "shorter); wall time only between runs of equal length; runs of the same seed compared.")
    return table


# ------------------------------------------------------------------------------- other runs
def _median(stat: Any) -> float | None:
    return stat.get("median") if isinstance(stat, dict) else stat


def _environment(data: dict) -> dict:
    env = data.get("environment") or {}
    return env.get("before", env)  # bench_cpu_inference.py records the environment before and after


def _machine(data: dict) -> str:
    env = _environment(data)
    parts = [env.get("gpu") or data.get("device"), env.get("cpu"),
             f"{env['cores']} cores" if env.get("cores") else None, f"torch {env['torch']}" if env.get("torch") else None,
             f"load average {env['load_average'][0]:.1f}" if env.get("load_average") else None]
    return ", ".join(str(x) for x in parts if x)


def provenance_line(data: dict) -> str:
    """``commit 29a2ddf, 2026-12-02, on AMD EPYC, 2 cores, ...`` (what is recorded of a benchmark run)."""
    env = _environment(data)
    commit = f"commit {env['git_commit']}" if env.get("git_commit") else "commit not recorded"
    when = str(env.get("time") or "")[:10]
    return ", ".join(x for x in (commit, when, f"on {_machine(data)}" if _machine(data) else "machine not recorded") if x)


def cpu_inference(data: dict) -> Table:
    table = Table(["threads", "engine", "ms/MP", "GFLOP/s", "fraction of peak", "speed-up vs eager"], [])
    for threads, engines in (data.get("engines") or {}).items():
        for name, e in engines.items():
            table.rows.append([threads.removeprefix("threads_"), name, fmt(_median(e.get("ms_per_megapixel"))),
                               fmt(_median(e.get("gflops"))), fmt(_median(e.get("fraction_of_peak"))),
                               fmt(e.get("speedup_vs_reference_fp32_eager"))])
    return table


def gpu_inference(data: dict) -> Table:
    best = data.get("best") or {}
    return Table(["device", "target", "met", "best engine", "ms / 1080p frame", "fraction of fp16 peak"],
                 [[str(data.get("device", "–")), str(data.get("target", "–")), str(data.get("target_met", "–")),
                   str(best.get("engine", "–")), fmt(best.get("ms_per_frame_median")),
                   fmt(best.get("fraction_of_fp16_matmul_peak"))]])


def scaling(data: dict) -> Table:
    table = Table(["megapixels", "ms (median)", "ms/MP", "peak RSS (MiB)"], [])
    for s in data.get("sizes") or []:
        table.rows.append([fmt(s.get("megapixels")), fmt(_median(s.get("ms"))), fmt(_median(s.get("ms_per_megapixel"))),
                           fmt(s.get("peak_rss_mib"))])
    fit = data.get("fit") or {}
    if fit:
        table.notes.append(f"linear fit: {fmt(fit.get('ms_per_megapixel_slope'))} ms/MP, "
                           f"R² = {fmt(fit.get('r_squared'))}")
    return table


STEP_COLUMNS = {"batch": "batch", "enhancer": "enhancer fwd", "guidance_encoder": "guidance fwd",
                "identity_encoder": "identity fwd", "backward": "backward", "optimizer": "optimiser", "other": "other"}


def training(data: dict) -> Table:
    table = Table(["method", "status", "iterations", "s/iter", *(f"{c} share" for c in STEP_COLUMNS.values()),
                   "GFLOP/s", "fraction of peak", "peak RSS (MB)"], [])
    for method, r in (data.get("methods") or {}).items():
        share = r.get("enhancer_step_time_share") or {}
        iters = r.get("iterations") or {}
        flops = r.get("flops") or {}
        table.rows.append([method, str(r.get("status")) + (f": {r['reason']}" if r.get("reason") else ""),
                           str(iters.get("total", "–") if isinstance(iters, dict) else iters), fmt(r.get("s_per_iter")),
                           *(fmt(share.get(k)) for k in STEP_COLUMNS), fmt(flops.get("gflops")),
                           fmt(flops.get("fraction_of_peak")), fmt(r.get("peak_rss_mb"))])
    settings = data.get("settings") or {}
    if settings:
        table.notes.append(f"schedule {settings.get('schedule')}, device {settings.get('device')}, "
                           f"encoders {settings.get('encoders')}; shares of an enhancer step's time (CPU)")
    return table


def pipeline(data: dict) -> Table:
    table = Table(["stage family", "seconds"], [[k, fmt(v)] for k, v in (data.get("by_family_s") or {}).items()])
    table.rows.append(["total (`dvc repro`)", fmt(data.get("total_s"))])
    return table


SECTIONS: dict[str, tuple[str, Callable[[dict], Table]]] = {
    "cpu_inference": ("Enhancer inference on CPU (1024x1024)", cpu_inference),
    "gpu_inference": ("Enhancer inference on GPU (1920x1080)", gpu_inference),
    "scaling": ("Inference time and memory against image size (CPU, tiled)", scaling),
    "training": ("Training step", training),
    "pipeline": ("Whole pipeline", pipeline),
}


def other_runs(perf: dict[str, Any], root: Path, perf_dir: str | Path = DEFAULT_DIR) -> list[tuple[str, str, Table]]:
    """``(title, provenance, table)`` for every known benchmark file of ``perf_dir`` present, in a fixed order;
    each file is copied to ``results/tables/other-runs/<name>.json`` (the table's raw-data link)."""
    out = []
    for stem, (title, render) in SECTIONS.items():
        data = perf.get(stem)
        if isinstance(data, dict):
            table = render(data)
            table.source = f"{OTHER_RUNS}/{stem}.json"
            write_json(root / table.source, data)
            out.append((f"{title} — {Path(perf_dir).as_posix()}/{stem}.json", provenance_line(data), table))
    return out

