"""The report's performance section: the figures of ``benchmarks/results/*.json`` as short tables.

Each benchmark script (``benchmarks/bench_*.py``) writes one JSON file; this module reads the ones
it knows (CPU and GPU inference, scaling, training, pipeline) and keeps their headline numbers:
median times, the fraction of the machine's measured peak, speed-ups, and the machine they ran on.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.report.tables import Table, fmt

DEFAULT_DIR = Path("benchmarks") / "results"


def _median(stat: Any) -> float | None:
    return stat.get("median") if isinstance(stat, dict) else stat


def _machine(data: dict) -> str:
    env = data.get("environment") or {}
    env = env.get("before", env)  # bench_cpu_inference.py records the environment before and after
    parts = [env.get("gpu") or data.get("device"), env.get("cpu"),
             f"{env['cores']} cores" if env.get("cores") else None, f"torch {env['torch']}" if env.get("torch") else None,
             f"load average {env['load_average'][0]:.1f}" if env.get("load_average") else None]
    return ", ".join(str(x) for x in parts if x)


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


def training(data: dict) -> Table:
    table = Table(["method", "status", "iterations", "s/iter", "enhancer share", "guidance share", "identity share",
                   "peak RSS (MB)"], [])
    for method, r in (data.get("methods") or {}).items():
        share = r.get("enhancer_step_time_share") or {}
        iters = r.get("iterations") or {}
        table.rows.append([method, str(r.get("status")) + (f": {r['reason']}" if r.get("reason") else ""),
                           str(iters.get("total", "–") if isinstance(iters, dict) else iters), fmt(r.get("s_per_iter")),
                           *(fmt(share.get(k)) for k in ("enhancer", "guidance_encoder", "identity_encoder")),
                           fmt(r.get("peak_rss_mb"))])
    settings = data.get("settings") or {}
    if settings:
        table.notes.append(f"schedule {settings.get('schedule')}, device {settings.get('device')}, "
                           f"encoders {settings.get('encoders')}")
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


def performance_tables(benchmarks: dict[str, Any]) -> list[tuple[str, list[Table]]]:
    """``(title, [table])`` for every known benchmark file present, in a fixed order."""
    out = []
    for stem, (title, render) in SECTIONS.items():
        data = benchmarks.get(stem)
        if isinstance(data, dict):
            table = render(data)
            if machine := _machine(data):
                table.notes.append(f"measured on {machine}")
            out.append((f"{title} — benchmarks/results/{stem}.json", [table]))
    return out
