"""The inference timing harness: ms per megapixel of any image -> image callable, interleaved.

An enhancer is any callable (:class:`TimedEnhancer`); :func:`time_callables` times several round-robin
in one run on one machine, each record's ms/MP median and quartiles from one sample set at one
stated size. :func:`read_inference_timings` reads back what a results folder holds, seeds pooled.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backlit_core.atomic import write_json
from benchmark.machine import timing_environment
from benchmark.results import ResultsFolder


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
    def key(self) -> tuple[str, int | None]:
        return self.system, self.seed


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
        raise ValueError(f"enhancers to time must have distinct (system, seed) keys, got {keys}")
    gen = torch.Generator().manual_seed(seed)
    sizes: dict[tuple[str, int | None], list[dict]] = {k: [] for k in keys}
    for mp in sizes_mp:
        side = max(64, round(math.sqrt(mp * 1e6)))
        image = torch.rand(3, side, side, generator=gen)
        for e in enhancers:
            _warm_up(e.fn, image, warmup, 0.0 if e.device == "cpu" else min_warmup_s)
        ms: dict[tuple[str, int | None], list[float]] = {k: [] for k in keys}
        for _ in range(repeats):
            for e in enhancers:
                t0 = time.perf_counter()
                e.fn(image)
                ms[e.key].append((time.perf_counter() - t0) * 1000.0)
        for k in keys:
            sizes[k].append(_summary(ms[k], side, side))
    return [{"system": e.system, "seed": e.seed, **timing_environment(e.device), "repeats": repeats, "warmup": warmup,
             "sizes": sizes[e.key], **_headline(sizes[e.key]), **e.facts} for e in enhancers]


def network_enhancer(system: str, weights: str | Path | None, *, seed: int | None = None, device: str = "auto",
                     tile: int | None = None, precision: str = "fp32", padding: str = "reflect") -> TimedEnhancer:
    """The enhancer of ``weights`` (anything ``bench enhance --weights`` takes: a released name, a ``.pth``
    or run directory, a training-free operator; None: the shared network with fresh weights), run as
    ``bench enhance`` runs it."""
    from benchmark.batch_enhance import open_system
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


def time_systems(folder: ResultsFolder, weights: dict[str, str | Path | None],
                 **kwargs: Any) -> dict[str, dict[str, Any]]:
    """:func:`time_enhancers` (interleaved) and write each system's record to its timing file in ``folder``."""
    records = time_enhancers(weights, **kwargs)
    for name, rec in records.items():
        write_json(folder.system_timing_file(name), rec)
    return records


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


def read_inference_timings(folder: ResultsFolder) -> dict[str, dict]:
    """System -> inference record: from the time-inference stage's file (seeds pooled), which is one run on
    one machine; without it, the per-system files of ``bench compare``/``bench time-inference``."""
    run = folder.inference_run()
    if run is not None:
        groups: dict[str, list[dict]] = {}
        for rec in run["systems"]:
            groups.setdefault(str(rec["system"]), []).append(rec)
        return {system: pool_seeds(recs) for system, recs in groups.items()}
    return {system: {**rec, **_headline(rec["sizes"])} for system, rec in folder.system_timings().items()}
