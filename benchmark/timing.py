"""Cost: inference timing (ms per megapixel), training timing, time to quality and speed ratios.

Inference: an enhancer is any image -> image callable (:class:`TimedEnhancer`); the time-inference
stage times every system of a run (trained runs per seed, released weights) round-robin in one run
on one machine into ``results/timing/inference.json``, each record's ms/MP median and quartiles
from one sample set at one stated size. Training: per run, from ``results/timing/train/<system>/
seed-<k>/`` or, in the older seedless layout, from ``train_summary.json`` and
``train_log.csv``; read defensively (missing keys fall back to the per-step log). Ratios are
computed only between runs on the same machine and at equal iteration counts.
"""
from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backlit_core.atomic import read_json, write_json


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
    from backlit_core.provenance import cpu_model

    return cpu_model()


def machine_id(device: str = "cpu") -> str:
    """A label identifying the hardware a timing ran on (ratios need equal labels)."""
    if device.startswith("cuda"):
        import torch

        return f"{platform.node()} / {torch.cuda.get_device_name(torch.device(device))}"
    return f"{platform.node()} / {cpu_name()}"


# ------------------------------------------------------------------------------------ inference
@dataclass
class TimedEnhancer:
    """One enhancer to time, whatever it is: ``fn`` maps a 3 x H x W float tensor in [0, 1] to the enhanced
    image and returns only when the result is ready (e.g. as a CPU tensor). ``facts`` go into its record."""

    system: str
    fn: Callable[[Any], Any]
    device: str = "cpu"
    seed: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.system if self.seed is None else f"{self.system}/seed-{self.seed}"


def quartiles(values: Sequence[float]) -> dict[str, float]:
    """Median, p25, p75 (inclusive quartiles of one sample set: the median lies between them), min, max, n."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": q[1], "p25": q[0], "p75": q[2], "min": min(values), "max": max(values), "n": len(values)}


def _summary(ms: list[float], height: int, width: int) -> dict[str, Any]:
    mp = height * width / 1e6
    q = quartiles([m / mp for m in ms])
    return {"megapixels": round(mp, 4), "height": height, "width": width,
            **{f"ms_per_mp_{k}": q[k] for k in ("median", "p25", "p75", "min", "max")},
            "ms_samples": [round(m, 3) for m in ms]}


def _headline(sizes: list[dict]) -> dict[str, Any]:
    """ms/MP median, p25, p75 from the samples at the largest size timed (stated as ``reference_megapixels``)."""
    ref = max(sizes, key=lambda s: s["megapixels"])
    return {"reference_megapixels": ref["megapixels"], "ms_per_mp_median": ref["ms_per_mp_median"],
            "ms_per_mp_p25": ref["ms_per_mp_p25"], "ms_per_mp_p75": ref["ms_per_mp_p75"],
            "ms_per_mp_n": len(ref.get("ms_samples") or [])}


def _warm_up(fn: Callable, image: Any, runs: int, min_seconds: float) -> None:
    """At least ``runs`` untimed runs, and on an accelerator at least ``min_seconds`` (clocks ramp up)."""
    start, done = time.perf_counter(), 0
    while done < runs or time.perf_counter() - start < min_seconds:
        fn(image)
        done += 1


def environment(device: str = "cpu") -> dict[str, Any]:
    """Where a timing ran: device, machine label, CPU, torch version, intra-op threads and CPU numerics."""
    import torch

    from backlit_core import numerics

    return {"device": device, "machine": machine_id(device), "cpu": cpu_name(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numerics": numerics.settings()}


def time_callables(enhancers: Sequence[TimedEnhancer], *, sizes_mp: Sequence[float] = (0.25,), repeats: int = 5,
                   warmup: int = 2, seed: int = 0, min_warmup_s: float = 2.0) -> list[dict[str, Any]]:
    """Time every enhancer on random square images of ``sizes_mp`` megapixels; one record each.

    Warm-up runs are excluded (on an accelerator they last at least ``min_warmup_s``, while clocks
    ramp up and kernels compile); repeats run round-robin over the enhancers, so a load change on a
    shared machine hits all of them alike. Each record's headline ms/MP (median, p25, p75) comes from
    one sample set: the ``repeats`` runs at the largest size; every size keeps its own quartiles.
    """
    import torch

    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    keys = [e.key for e in enhancers]
    if len(set(keys)) != len(keys):
        raise ValueError(f"enhancers to time must have distinct system/seed keys, got {keys}")
    gen = torch.Generator().manual_seed(seed)
    sizes: dict[str, list[dict]] = {k: [] for k in keys}
    for mp in sizes_mp:
        side = max(64, round(math.sqrt(mp * 1e6)))
        image = torch.rand(3, side, side, generator=gen)
        for e in enhancers:
            _warm_up(e.fn, image, warmup, 0.0 if e.device == "cpu" else min_warmup_s)
        ms: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(repeats):
            for e in enhancers:
                t0 = time.perf_counter()
                e.fn(image)
                ms[e.key].append((time.perf_counter() - t0) * 1000.0)
        for k in keys:
            sizes[k].append(_summary(ms[k], side, side))
    return [{"system": e.system, "seed": e.seed, **environment(e.device), "repeats": repeats, "warmup": warmup,
             "sizes": sizes[e.key], **_headline(sizes[e.key]), **e.facts} for e in enhancers]


def network_enhancer(system: str, weights: str | Path | None, *, seed: int | None = None, device: str = "auto",
                     tile: int | None = None, precision: str = "fp32", padding: str = "reflect") -> TimedEnhancer:
    """The enhancer of ``weights`` (anything ``bench enhance --weights`` takes: a released name, a ``.pth``
    or run directory, a training-free operator; None: the shared network with fresh weights), run as
    ``bench enhance`` runs it."""
    from benchmark.enhance import open_system
    from methods.network import MACS_PER_PIXEL, EnhanceNet, count_parameters
    from methods.tiled_inference import TiledEnhancer

    if weights is None:
        engine = TiledEnhancer(EnhanceNet(padding), device=device, tile=tile, precision=precision)
    else:
        engine = open_system(weights, padding=padding, device=device, tile=tile, precision=precision)[0]
    if isinstance(engine, TiledEnhancer):
        params, macs, kind = count_parameters(engine.net), MACS_PER_PIXEL, "network"
    else:
        net = getattr(engine, "net", None)
        params = count_parameters(net) if net is not None else 0
        macs, kind = getattr(engine, "macs_per_pixel", None), "network" if net is not None else "operator"
    facts = {"kind": kind, "weights": None if weights is None else str(weights), "tile": getattr(engine, "tile", None),
             "precision": precision, "params": params, "macs_per_pixel": macs,
             "flops_per_pixel": 2 * macs if macs else None}
    return TimedEnhancer(system, engine, str(getattr(engine, "device", "cpu")), seed, facts)


def time_enhancers(weights: dict[str, str | Path | None], *, device: str = "auto", sizes_mp: Sequence[float] = (0.25,),
                   repeats: int = 5, warmup: int = 2, tile: int | None = None, seed: int = 0,
                   min_warmup_s: float = 2.0) -> dict[str, dict[str, Any]]:
    """:func:`time_callables` of the network with each of ``weights`` (system -> weights), keyed by system."""
    enhancers = [network_enhancer(name, w, device=device, tile=tile) for name, w in weights.items()]
    records = time_callables(enhancers, sizes_mp=sizes_mp, repeats=repeats, warmup=warmup, seed=seed,
                             min_warmup_s=min_warmup_s)
    return {r["system"]: r for r in records}


def time_systems(out_dir: str | Path, weights: dict[str, str | Path | None], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """:func:`time_enhancers` (interleaved) and write ``<out_dir>/<system>.json`` per system."""
    records = time_enhancers(weights, **kwargs)
    for name, rec in records.items():
        write_json(Path(out_dir) / f"{name}.json", rec)
    return records


def run_systems(results: str | Path, params: dict) -> tuple[list[tuple[str, int | None, str | Path]], list[dict]]:
    """The enhancer systems a run has, as (system, seed, weights): trained runs per seed
    (``results/train/<method>-<regime>/seed-<k>``, or the older seedless run directory) and released
    weights; and the ones that cannot be timed, with the reason."""
    from benchmark.system import System

    results = Path(results)
    seeds = params.get("seeds") or [params.get("seed", 0)]
    systems: list[tuple[str, int | None, str | Path]] = []
    missing: list[dict] = []
    for method in params.get("methods") or []:
        for regime in params.get("regimes") or []:
            base = System.trained(method, regime)
            name = base.name
            runs = [(k, System.trained(method, regime, k).train_dir(results)) for k in seeds]
            if not any(d.is_dir() for _, d in runs) and base.train_dir(results).is_dir():
                runs = [(seeds[0], base.train_dir(results))]  # older layout: one run, no seed level
            for k, run in runs:
                status = read_json(run / "train_summary.json")
                if status.get("status") == "skipped":
                    missing.append({"system": name, "seed": k, "reason": f"training skipped: {status.get('reason')}"})
                elif not (run / "enhancer.pth").is_file():
                    where = (run / "enhancer.pth").relative_to(results).as_posix()
                    missing.append({"system": name, "seed": k, "reason": f"no trained weights ({where} not found)"})
                else:
                    systems.append((name, k, run))
    for s in [System.released(w) for w in params.get("released") or []] + \
            [System.parse(op) for op in params.get("operators") or []]:
        systems.append((s.name, None, s.weights or s.name))
    return systems, missing


def time_run(results: str | Path, params: dict, out: str | Path | None = None) -> dict[str, Any]:
    """Time every enhancer system of a run in one interleaved sample set and write ``timing/inference.json``."""
    from benchmark.weights import WeightsUnavailable

    results = Path(results)
    systems, not_timed = run_systems(results, params)
    t, enh = params.get("timing") or {}, params.get("enhance") or {}
    enhancers = []
    for system, seed, weights in systems:
        try:
            enhancers.append(network_enhancer(system, weights, seed=seed, device=params.get("device", "auto"),
                                              tile=enh.get("tile") or None, precision=enh.get("precision", "fp32"),
                                              padding=enh.get("padding", "reflect")))
        except (WeightsUnavailable, FileNotFoundError, RuntimeError) as exc:
            not_timed.append({"system": system, "seed": seed, "reason": str(exc)})
    sizes = [float(s) for s in t.get("sizes_mp", [0.25, 1.0])]
    records = time_callables(enhancers, sizes_mp=sizes, repeats=int(t.get("repeats", 5)),
                             warmup=int(t.get("warmup", 2)))
    device = enhancers[0].device if enhancers else str(params.get("device", "auto"))
    doc = {**environment(device), "sizes_mp": sizes, "reference_megapixels": max(sizes) if sizes else None,
           "repeats": int(t.get("repeats", 5)), "systems": records, "not_timed": not_timed}
    write_json(out or results / "timing" / "inference.json", doc)
    return doc


def pool_seeds(records: list[dict]) -> dict[str, Any]:
    """One system-level record from its per-seed records of one run: samples pooled per size."""
    if len(records) == 1:
        return dict(records[0])
    by_mp: dict[float, list[dict]] = {}
    for r in records:
        for s in r["sizes"]:
            by_mp.setdefault(s["megapixels"], []).append(s)
    sizes = [_summary([m for s in group for m in s["ms_samples"]], group[0]["height"], group[0]["width"])
             for _, group in sorted(by_mp.items())]
    return {**records[0], "seed": None, "seeds": [r.get("seed") for r in records], "sizes": sizes, **_headline(sizes)}


def read_inference_run(results: str | Path) -> dict[str, Any] | None:
    """``results/timing/inference.json`` as the time-inference stage writes it (None: absent or older format)."""
    doc = read_json(Path(results) / "timing" / "inference.json")
    return doc if isinstance(doc.get("systems"), list) else None


def read_inference_timings(results: str | Path) -> dict[str, dict]:
    """System -> inference record: from ``timing/inference.json`` (seeds pooled), which is one run on one
    machine; without it, the per-system ``timing/<system>.json`` of ``bench compare``/``bench time-inference``."""
    run = read_inference_run(results)
    if run is not None:
        groups: dict[str, list[dict]] = {}
        for rec in run["systems"]:
            groups.setdefault(str(rec["system"]), []).append(rec)
        return {system: pool_seeds(recs) for system, recs in groups.items()}
    out: dict[str, dict] = {}
    for path in sorted((Path(results) / "timing").glob("[!.]*.json")):
        rec = read_json(path)
        if "sizes" in rec:
            out[str(rec.get("system") or path.stem)] = {**rec, **_headline(rec["sizes"])}
    return out


# ------------------------------------------------------------------------------------- training
def read_train_log(path: str | Path) -> pd.DataFrame:
    """A training ``train_log.csv`` (or its timing CSV); empty if absent or unreadable."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame()


def timing_files(run_dir: str | Path) -> tuple[Path, Path] | None:
    """``results/timing/train/<system>/seed-<k>/{train_timing.json,train_steps.csv}`` (as the trainer writes
    them, :mod:`methods.run_files`) of run ``results/train/<system>/seed-<k>``."""
    from methods.run_files import STEPS, TIMING

    run_dir = Path(run_dir)
    if not run_dir.name.startswith("seed-") or len(run_dir.parents) < 3:
        return None
    base = run_dir.parents[2] / "timing" / "train" / run_dir.parent.name / run_dir.name
    return base / TIMING, base / STEPS


def _seed(run_dir: Path, summary: dict) -> int | None:
    if run_dir.name.startswith("seed-") and run_dir.name[5:].isdigit():
        return int(run_dir.name[5:])
    return summary.get("seed")


def run_steps(run: dict) -> pd.DataFrame:
    """Per-iteration ``iter, phase, step_s`` (+ loss terms where the log has them) of a run from
    :func:`training_timing`, in iteration order; empty when the run has no step timings."""
    steps = read_train_log(run["steps_csv"]) if run.get("steps_csv") else pd.DataFrame()
    if not len(steps) or "step_s" not in steps.columns:
        return pd.DataFrame()
    log = read_train_log(run["log"]) if run.get("log") and run["log"] != run["steps_csv"] else pd.DataFrame()
    if len(log) and "iter" in log.columns and "iter" in steps.columns:
        extra = [c for c in log.columns if c not in steps.columns or c == "iter"]
        steps = steps.merge(log[extra], on="iter", how="left")
    return steps.sort_values("iter") if "iter" in steps.columns else steps


def training_timing(run_dir: str | Path) -> dict[str, Any]:
    """Status, wall time, iterations and s/iter by phase, peak memory and machine of one training run.

    ``run_dir`` is ``results/train/<system>/seed-<k>`` (timings in ``results/timing/train/<system>/
    seed-<k>/``, :func:`timing_files`) or an older run directory whose ``train_summary.json`` and ``train_log.csv``
    hold the timings too. s/iter is the median step time of the phase. A system directory holding
    ``seed-<k>`` runs gives :func:`pool_runs` of them.
    """
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "train_summary.json")
    seeds = sorted((p for p in run_dir.glob("seed-*") if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if seeds and not summary:
        return pool_runs([training_timing(p) for p in seeds])
    files = timing_files(run_dir)
    timing = read_json(files[0]) if files else {}
    steps_csv = files[1] if files and files[1].is_file() else run_dir / "train_log.csv"
    run = {"log": run_dir / "train_log.csv", "steps_csv": steps_csv}
    steps = run_steps(run)
    phases: dict[str, dict[str, float]] = {}
    if len(steps):
        for phase, group in steps.groupby("phase", sort=False):
            phases[str(phase)] = {"iterations": len(group), "s_per_iter": float(group["step_s"].median()),
                                  "wall_s": float(group["step_s"].sum())}
    else:
        iters = timing.get("iterations") or summary.get("iterations") or {}
        for phase, s in (timing.get("s_per_iter") or summary.get("s_per_iter") or {}).items():
            phases[phase] = {"iterations": iters.get(phase), "s_per_iter": s, "wall_s": None}
    wall = timing.get("wall_s", summary.get("wall_s"))
    if wall is None and len(steps):
        wall = float(steps["wall_s"].max()) if "wall_s" in steps.columns else float(steps["step_s"].sum())
    log_rows = len(read_train_log(run["log"]))
    iters = (summary.get("iterations") or timing.get("iterations") or {}).get("total", log_rows or None)
    encoders = {"guidance": summary["encoder"], "identity": summary.get("identity_encoder")} if summary.get("encoder") else None
    system = run_dir.parent.name if run_dir.name.startswith("seed-") else run_dir.name
    status = summary.get("status", "done" if log_rows else "missing")
    return {"run": run_dir.name, "system": system, "seed": _seed(run_dir, summary), "dir": str(run_dir),
            **{k: str(v) for k, v in run.items()}, "status": status, "reason": summary.get("reason"),
            "wall_s": float(wall) if wall is not None else None,
            "iterations": int(iters) if iters is not None else None, "phases": phases,
            "peak_memory_mb": _peak_memory_mb({**summary, **timing}), "machine": _train_machine(run_dir, summary, timing),
            "encoders": encoders, "random_encoder": bool(summary.get("is_random")), "method": summary.get("method")}


def pool_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system-level record from the runs of its seeds: the finished runs' mean wall time and median s/iter
    by phase; iterations, machine and the per-step files of the first finished run."""
    done = [r for r in runs if r["status"] == "done"] or runs[:1]
    first = done[0]
    phases = {}
    for phase in dict.fromkeys(p for r in done for p in r["phases"]):
        vals = [r["phases"][phase] for r in done if phase in r["phases"]]
        s_iter = [v["s_per_iter"] for v in vals if v.get("s_per_iter") is not None]
        walls = [v["wall_s"] for v in vals if v.get("wall_s") is not None]
        phases[phase] = {"iterations": vals[0].get("iterations"), "s_per_iter": statistics.median(s_iter) if s_iter else None,
                         "wall_s": statistics.mean(walls) if walls else None}
    walls = [r["wall_s"] for r in done if r.get("wall_s") is not None]
    return {**first, "run": first["system"], "dir": str(Path(first["dir"]).parent), "seed": None,
            "seeds": [r["seed"] for r in done], "phases": phases, "wall_s": statistics.mean(walls) if walls else None,
            "random_encoder": any(r.get("random_encoder") for r in runs)}


def training_runs(results: str | Path) -> dict[str, dict[str, Any]]:
    """Every run under ``results/train``: ``<system>/seed-<k>`` (or ``<system>``, older layout) -> timing."""
    out = {}
    for system in sorted(p for p in (Path(results) / "train").glob("*") if p.is_dir()):
        seeds = sorted((p for p in system.glob("seed-*") if p.is_dir()), key=lambda p: (len(p.name), p.name))
        for run in seeds or [system]:
            out[f"{system.name}/{run.name}" if seeds else system.name] = training_timing(run)
    return out


def _peak_memory_mb(summary: dict) -> float | None:
    peaks = [summary.get(k) for k in ("peak_cuda_mb", "peak_rss_mb")]
    return next((float(v) for v in peaks if v is not None), None)


def _train_machine(run_dir: Path, summary: dict, timing: dict) -> str | None:
    if timing.get("device") or timing.get("cpu"):
        return " / ".join(str(timing[k]) for k in ("device", "cpu") if timing.get(k))
    if summary.get("machine"):
        return str(summary["machine"])
    dev = read_json(run_dir / "provenance.json").get("device", {})
    return " / ".join(str(dev[k]) for k in ("platform", "processor", "cuda_device", "cpu_count") if dev.get(k)) or None


# ------------------------------------------------------------------------------ time to quality
def enhance_rows(run: dict) -> pd.DataFrame:
    """The enhance phase of a run, every round in order, with ``enhance_s``: cumulative seconds spent in it."""
    steps = run_steps(run)
    if not len(steps) or "phase" not in steps.columns:
        return pd.DataFrame()
    rows = steps[steps["phase"] == "enhance"].copy()
    rows["enhance_s"] = rows["step_s"].cumsum()
    return rows


def convergence(run: dict, column: str = "guidance", fraction: float = 0.9) -> dict[str, float] | None:
    """Enhance-phase time until ``column`` (smoothed: rolling median over a tenth of the phase, at least 5
    iterations) first reaches ``fraction`` of its drop from the first to the last smoothed value.

    The trainer logs no validation metric while enhancing, so this is the quality proxy: the enhancer's
    own guidance loss. None when the loss did not drop or was not logged."""
    rows = enhance_rows(run)
    if column not in rows.columns or not len(rows):
        return None
    vals = pd.to_numeric(rows[column], errors="coerce")
    smooth = vals.rolling(max(5, len(rows) // 10), min_periods=1).median().to_numpy()
    start, final = float(smooth[0]), float(smooth[-1])
    if not final < start:
        return None
    target = start - fraction * (start - final)
    k = int(next(i for i, v in enumerate(smooth) if v <= target))
    return {"iterations": k + 1, "seconds": float(rows["enhance_s"].iloc[k]), "start": start, "final": final,
            "target": target, "of_iterations": len(rows)}


def time_to_reach(rows: pd.DataFrame, column: str, target: float, *, lower_better: bool) -> float | None:
    """Enhance-phase seconds at the first of ``rows`` (:func:`enhance_rows`) where ``column`` reaches ``target``."""
    if column not in rows.columns or "enhance_s" not in rows.columns:
        return None
    vals = pd.to_numeric(rows[column], errors="coerce")
    hit = rows[(vals <= target) if lower_better else (vals >= target)]
    return float(hit["enhance_s"].iloc[0]) if len(hit) else None


def _equal_count_s_per_iter(steps: pd.DataFrame, phase: str, n: int) -> float | None:
    group = steps[steps["phase"] == phase]["step_s"].head(n) if len(steps) else pd.Series(dtype=float)
    return float(group.median()) if len(group) else None


def speed_ratios(runs: dict[str, dict], pairs: Sequence[tuple[str, str]],
                 quality: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """How many times faster run ``a`` is than run ``b`` (b / a), at equal iteration counts.

    Quantities: s/iter of each phase both runs have, over the first n iterations of it in each (n the
    smaller count); training wall time only when both ran the same iterations per phase; the
    enhance-phase seconds to 90% of the guidance-loss drop (:func:`convergence`); and, for each
    ``quality`` column (name -> lower_better) both logs hold *during the enhance phase*, the
    enhance-phase seconds to reach the weaker run's final value. Pairs from different machines keep
    their values but get ``ratio`` None and a note.
    """
    out: list[dict[str, Any]] = []
    for a, b in pairs:
        ra, rb = runs.get(a), runs.get(b)
        if not ra or not rb:
            continue
        same = ra.get("machine") == rb.get("machine")
        quantities = _phase_quantities(ra, rb)
        ca, cb = convergence(ra), convergence(rb)
        if ca and cb:
            quantities.append(("enhance-phase s to 90% of the guidance-loss drop", ca["seconds"], cb["seconds"], ""))
        quantities += _quality_quantities(ra, rb, quality or {})
        for what, va, vb, note in quantities:
            comparable = same and not note
            out.append({"a": a, "b": b, "quantity": what, "a_value": va, "b_value": vb,
                        "ratio": vb / va if comparable and va and vb else None,
                        "note": note if same else "different machines: not comparable"})
    return out


def _phase_quantities(ra: dict, rb: dict) -> list[tuple[str, Any, Any, str]]:
    """(quantity, a, b, note) for the s/iter of each phase both runs have, and for their training wall time."""
    sa, sb = run_steps(ra), run_steps(rb)
    pa, pb = ra.get("phases", {}), rb.get("phases", {})
    counts_a = {p: v.get("iterations") for p, v in pa.items()}
    counts_b = {p: v.get("iterations") for p, v in pb.items()}
    quantities = []
    for phase in [p for p in pa if p in pb]:
        n = min(counts_a[phase] or 0, counts_b[phase] or 0)
        va, vb = _equal_count_s_per_iter(sa, phase, n), _equal_count_s_per_iter(sb, phase, n)
        if va is None or vb is None:  # no step timings: the runs' own medians, over their own lengths
            va, vb, n = pa[phase].get("s_per_iter"), pb[phase].get("s_per_iter"), None
        quantities.append((f"s/iter, phase {phase}" + (f" (first {n} it each)" if n else ""), va, vb, ""))
    equal = counts_a == counts_b
    quantities.append(("training wall time (s)", ra.get("wall_s"), rb.get("wall_s"), "" if equal else
                       f"different lengths ({ra.get('iterations')} vs {rb.get('iterations')} it): compare s/iter"))
    return quantities


def _quality_quantities(ra: dict, rb: dict, quality: dict[str, bool]) -> list[tuple[str, Any, Any, str]]:
    """(quantity, a, b, note) for the enhance-phase seconds to reach the weaker run's final value of each
    ``quality`` column both logs hold."""
    quantities = []
    ea, eb = enhance_rows(ra), enhance_rows(rb)
    for column, lower in quality.items():
        fa, fb = (pd.to_numeric(f[column], errors="coerce").dropna() if column in f.columns else pd.Series(dtype=float)
                  for f in (ea, eb))
        if fa.empty or fb.empty:
            continue
        target = float(max(fa.iloc[-1], fb.iloc[-1]) if lower else min(fa.iloc[-1], fb.iloc[-1]))
        quantities.append((f"enhance-phase s to reach {column} = {target:.4g}",
                           time_to_reach(ea, column, target, lower_better=lower),
                           time_to_reach(eb, column, target, lower_better=lower), ""))
    return quantities
