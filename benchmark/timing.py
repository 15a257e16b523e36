"""Cost: inference timing (ms per megapixel), training timing from the logs, and speed ratios.

Training files are read defensively: ``train_summary.json`` keys may be missing or named
differently, so every figure falls back to what ``train_log.csv`` (iter, phase, loss terms,
wall_s) shows. Ratios are computed only between records taken on the same machine.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.atomic import write_json

NON_LOSS_COLUMNS = {"iter", "phase", "round", "psnr", "step_s", "wall_s"}  # train_log.csv columns that are not loss terms


# ------------------------------------------------------------------------------------- machine
def cpuinfo_field(name: str) -> str | None:
    """The first ``name`` field of /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def machine_id(device: str = "cpu") -> str:
    """A label identifying the hardware a timing ran on (ratios need equal labels)."""
    if device.startswith("cuda"):
        import torch

        return f"{platform.node()} / {torch.cuda.get_device_name(torch.device(device))}"
    return f"{platform.node()} / {cpu_name()}"


# ------------------------------------------------------------------------------------ inference
def _summary(ms: list[float], side: int) -> dict[str, Any]:
    per_mp = [m / (side * side / 1e6) for m in ms]
    q = statistics.quantiles(per_mp, n=4, method="inclusive") if len(per_mp) > 1 else [per_mp[0]] * 3
    return {"megapixels": round(side * side / 1e6, 4), "height": side, "width": side,
            "ms_per_mp_median": statistics.median(per_mp), "ms_per_mp_min": min(per_mp), "ms_per_mp_max": max(per_mp),
            "ms_per_mp_p25": q[0], "ms_per_mp_p75": q[2], "ms_samples": [round(m, 3) for m in ms]}


def _warm_up(engine: Callable, image: Any, runs: int, min_seconds: float) -> None:
    """At least ``runs`` untimed runs, and on an accelerator at least ``min_seconds`` (clocks ramp up)."""
    start, done = time.perf_counter(), 0
    while done < runs or time.perf_counter() - start < min_seconds:
        engine(image)
        done += 1


def _engine(weights: str | Path | None, device: str, tile: int | None) -> tuple[Any, tuple[int, int | None]]:
    """The enhancer of a system (None: the shared network, fresh weights), its parameters and MACs per pixel
    (None for the classical operators, which are not convolutions)."""
    from benchmark.enhance import open_system
    from methods.inference import TiledEnhancer
    from methods.network import MACS_PER_PIXEL, EnhanceNet, count_parameters

    engine = TiledEnhancer(EnhanceNet(), device=device, tile=tile) if weights is None else \
        open_system(weights, device=device, tile=tile)[0]
    if isinstance(engine, TiledEnhancer):
        return engine, (count_parameters(engine.net), MACS_PER_PIXEL)
    return engine, (getattr(engine, "parameters", 0), getattr(engine, "macs_per_pixel", None))


def time_enhancers(weights: dict[str, str | Path | None], *, device: str = "auto", sizes_mp: Sequence[float] = (0.25,),
                   repeats: int = 5, warmup: int = 2, tile: int | None = None, seed: int = 0,
                   min_warmup_s: float = 2.0) -> dict[str, dict[str, Any]]:
    """Time each enhancer (system -> weights) on random square images of ``sizes_mp`` megapixels.

    Warm-up runs are excluded (on an accelerator they last at least ``min_warmup_s``, while clocks
    ramp up and kernels compile); repeats run round-robin over the systems, so a load change on a
    shared machine hits all of them alike. Weights: anything ``bench enhance --weights`` takes (None: the
    shared network, fresh init); the shared network's cost does not depend on its weights.
    """
    import torch

    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    engines, cost = {}, {}
    for name, w in weights.items():
        engines[name], cost[name] = _engine(w, device, tile)
    gen = torch.Generator().manual_seed(seed)
    sizes: dict[str, list[dict]] = {name: [] for name in engines}
    for mp in sizes_mp:
        side = max(64, round(math.sqrt(mp * 1e6)))
        image = torch.rand(3, side, side, generator=gen)
        for engine in engines.values():
            _warm_up(engine, image, warmup, 0.0 if engine.device.type == "cpu" else min_warmup_s)
        ms: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(repeats):
            for name, engine in engines.items():
                t0 = time.perf_counter()
                engine(image)  # returns a CPU tensor: the device has synchronised
                ms[name].append((time.perf_counter() - t0) * 1000.0)
        for name in engines:
            sizes[name].append(_summary(ms[name], side))
    out = {}
    for name, engine in engines.items():
        dev = str(engine.device)
        out[name] = {
            "system": name, "weights": str(weights[name]) if weights[name] is not None else None, "device": dev,
            "machine": machine_id(dev), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "tile": getattr(engine, "tile", None), "repeats": repeats, "warmup": warmup, "sizes": sizes[name],
            "ms_per_mp_median": statistics.median(s["ms_per_mp_median"] for s in sizes[name]),
            "params": cost[name][0], "macs_per_pixel": cost[name][1],
            "flops_per_pixel": None if cost[name][1] is None else 2 * cost[name][1],
        }
    return out


def time_inference(out: str | Path, *, weights: str | Path | None = None, system: str | None = None,
                   device: str = "auto", sizes_mp: Sequence[float] = (0.25, 1.0), repeats: int = 5, warmup: int = 2,
                   tile: int | None = None) -> dict[str, Any]:
    """Time one enhancer (None: the shared network, fresh weights) and write its record to ``out``."""
    name = system or ("network" if weights is None else Path(str(weights)).name)
    record = time_enhancers({name: weights}, device=device, sizes_mp=sizes_mp, repeats=repeats, warmup=warmup,
                            tile=tile)[name]
    write_json(out, record)
    return record


def time_systems(out_dir: str | Path, weights: dict[str, str | Path | None], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """:func:`time_enhancers` (interleaved) and write ``<out_dir>/<system>.json`` per system."""
    records = time_enhancers(weights, **kwargs)
    for name, rec in records.items():
        write_json(Path(out_dir) / f"{name}.json", rec)
    return records


def read_inference_timings(results: str | Path) -> dict[str, dict]:
    """``results/timing/*.json`` keyed by system."""
    out: dict[str, dict] = {}
    for path in sorted((Path(results) / "timing").glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(rec, dict) and "sizes" in rec:
            out[str(rec.get("system") or path.stem)] = rec
    return out


# ------------------------------------------------------------------------------------- training
def read_train_log(path: str | Path) -> pd.DataFrame:
    """The trainer's ``train_log.csv`` (per-step ``step_s``, cumulative ``wall_s``); empty if absent."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame()


def loss_columns(log: pd.DataFrame) -> list[str]:
    """Numeric columns of a training log that are loss terms (not iter, phase, time, lr)."""
    return [c for c in log.columns if c not in NON_LOSS_COLUMNS and pd.api.types.is_numeric_dtype(log[c])]


def _peak_memory_mb(summary: dict) -> float | None:
    peaks = [summary.get(k) for k in ("peak_cuda_mb", "peak_rss_mb")]
    return next((float(v) for v in peaks if v is not None), None)


def training_timing(run_dir: str | Path) -> dict[str, Any]:
    """Wall time, iterations, s/iter by phase and peak memory of one training run directory.

    Reads the trainer's ``train_summary.json`` (``methods/trainer.py``) and ``train_log.csv``.
    """
    run_dir = Path(run_dir)
    summary: dict = {}
    try:
        summary = json.loads((run_dir / "train_summary.json").read_text())
    except (OSError, ValueError):
        pass
    log = read_train_log(run_dir / "train_log.csv")
    phases: dict[str, dict[str, float]] = {}
    if len(log) and "step_s" in log.columns:
        for phase, group in log.groupby("phase", sort=False):
            phases[str(phase)] = {"iterations": len(group), "s_per_iter": float(group["step_s"].median()),
                                  "wall_s": float(group["step_s"].sum())}
    wall = summary.get("wall_s")
    if wall is None and len(log) and "wall_s" in log.columns:
        wall = float(log["wall_s"].max())
    iters = (summary.get("iterations") or {}).get("total", len(log) or None)
    encoders = {"guidance": summary["encoder"], "identity": summary.get("identity_encoder")} if summary.get("encoder") else None
    return {"run": run_dir.name, "dir": str(run_dir), "status": summary.get("status", "done" if len(log) else "missing"),
            "reason": summary.get("reason"), "wall_s": float(wall) if wall is not None else None,
            "iterations": int(iters) if iters is not None else None, "phases": phases,
            "peak_memory_mb": _peak_memory_mb(summary), "machine": _train_machine(run_dir, summary),
            "encoders": encoders, "random_encoder": bool(summary.get("is_random")), "seed": summary.get("seed")}


def _train_machine(run_dir: Path, summary: dict) -> str | None:
    if summary.get("machine"):
        return str(summary["machine"])
    try:
        dev = json.loads((run_dir / "provenance.json").read_text()).get("device", {})
    except (OSError, ValueError):
        return None
    return " / ".join(str(dev[k]) for k in ("platform", "processor", "cuda_device", "cpu_count") if dev.get(k)) or None


def time_to_reach(log: pd.DataFrame, column: str, target: float, *, lower_better: bool) -> float | None:
    """Cumulative wall seconds at the first row where ``column`` reaches ``target``; None if never."""
    if column not in log.columns or "wall_s" not in log.columns:
        return None
    vals = pd.to_numeric(log[column], errors="coerce")
    hit = log[(vals <= target) if lower_better else (vals >= target)]
    return float(hit["wall_s"].iloc[0]) if len(hit) else None


def reach_times(run_a: str | Path, run_b: str | Path, column: str, *, lower_better: bool
                ) -> tuple[float, float | None, float | None] | None:
    """Target = the final ``column`` value of the weaker run; seconds each run needs to reach it."""
    la, lb = read_train_log(Path(run_a) / "train_log.csv"), read_train_log(Path(run_b) / "train_log.csv")
    if column not in la.columns or column not in lb.columns:
        return None
    fa, fb = pd.to_numeric(la[column], errors="coerce").dropna(), pd.to_numeric(lb[column], errors="coerce").dropna()
    if fa.empty or fb.empty:
        return None
    target = float(max(fa.iloc[-1], fb.iloc[-1]) if lower_better else min(fa.iloc[-1], fb.iloc[-1]))
    return target, time_to_reach(la, column, target, lower_better=lower_better), \
        time_to_reach(lb, column, target, lower_better=lower_better)


def speed_ratios(runs: dict[str, dict], pairs: Sequence[tuple[str, str]],
                 quality: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """How many times faster run ``a`` is than run ``b`` (b / a): wall time, s/iter by phase and,
    for each ``quality`` column (name -> lower_better) both logs hold, time to reach the same value.

    Pairs from different machines keep their values but get ``ratio`` None and a note.
    """
    out: list[dict[str, Any]] = []
    for a, b in pairs:
        ra, rb = runs.get(a), runs.get(b)
        if not ra or not rb:
            continue
        same = ra.get("machine") == rb.get("machine")
        quantities = [("training wall time (s)", ra.get("wall_s"), rb.get("wall_s"))]
        for phase in ra.get("phases", {}):
            if phase in rb.get("phases", {}):
                quantities.append((f"s/iter, phase {phase}", ra["phases"][phase].get("s_per_iter"),
                                   rb["phases"][phase].get("s_per_iter")))
        for column, lower in (quality or {}).items():
            reached = reach_times(ra["dir"], rb["dir"], column, lower_better=lower) if "dir" in ra and "dir" in rb else None
            if reached:
                quantities.append((f"time to reach {column} = {reached[0]:.4g} (s)", reached[1], reached[2]))
        for what, va, vb in quantities:
            out.append({"a": a, "b": b, "quantity": what, "a_value": va, "b_value": vb,
                        "ratio": vb / va if same and va and vb else None,
                        "note": "" if same else "different machines: not comparable"})
    return out
