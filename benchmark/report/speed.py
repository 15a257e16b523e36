"""The report's speed analysis of training runs (:mod:`benchmark.training_logs` records): time to quality on
the enhance phase and speed ratios between runs, computed only between runs on the same machine and at
equal iteration counts."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from benchmark.training_logs import run_steps


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
