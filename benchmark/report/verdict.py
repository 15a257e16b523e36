"""The report's opening: a few plain sentences generated from the tables, and one line of caveats.

Who is healthy, who is flagged and why; who leads on what, by how much (best only where the lead is
significant after Holm correction and beyond the seed spread), at what cost; whether differences
between trained systems exceed the between-seed spread.
"""
from __future__ import annotations

import math

from benchmark.health import Flag
from benchmark.report.results_loader import SKIPPED_LABEL, Results
from benchmark.report.tables import fmt, fmt_p, unit
from benchmark.system import System

PAPER = "CLIP ViT-B/32 guidance, CLIP RN101 identity, 512-px crops, the paper schedule"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _flag_phrase(f: Flag) -> str:
    return {"no-effect": "had no effect", "degenerate": "produced degenerate output",
            "diverged": "diverged in training", "stale": "has stale results"}[f.flag] + f": {f.value}"


def _health(res: Results, dataset: str) -> list[str]:
    systems = [s for s in res.systems(dataset) if s != "input"]
    skipped = [s for s in systems if res.labels.get(s, "").startswith(SKIPPED_LABEL)]
    healthy = [s for s in systems if not res.flags(dataset, s) and s not in skipped]
    flagged = [f"{s} {'; '.join(_flag_phrase(f) for f in res.flags(dataset, s))}" for s in systems
               if res.flags(dataset, s)]
    out = [f"Healthy: {_join(healthy)}." if healthy else "No system is healthy."]
    out += [f"Flagged (never ranked): {'. '.join(flagged)}."] if flagged else []
    out += [f"Not trained here (no outputs; see the systems table): {_join(skipped)}."] if skipped else []
    return out


def _amount(res: Results, metric: str, value: float) -> str:
    u = unit(metric, res.metric_info.get(metric))
    return f"{fmt(value)} dB" if u == "dB" else fmt(value)


def _cost(res: Results, system: str) -> str:
    parts = []
    if (t := res.inference.get(system)) and t.get("ms_per_mp_median"):
        parts.append(f"{fmt(t['ms_per_mp_median'])} ms/MP inference")
    if (w := res.training.get(system, {}).get("wall_s")):
        parts.append(f"{fmt(w)} s training")
    elif System.parse(system).source == "released":
        parts.append("no training here")
    return ", ".join(parts)


def _leads(res: Results, dataset: str) -> list[str]:
    dec = res.decisions[res.decisions["dataset"] == dataset]
    out = []
    best = dec[dec["status"] == "best"]
    for leader, group in best.groupby("best", sort=False):
        items = [f"{r.metric} (+{_amount(res, r.metric, r.lead)} over {r.runner_up}, p_holm {fmt_p(r.p_holm)})"
                 for r in group.itertuples()]
        cost = _cost(res, str(leader))
        out.append(f"{leader} is best on {_join(items)}" + (f"; cost: {cost}." if cost else "."))
    n_tests = int(res.paired["p_holm"].notna().sum())
    why = {"not significant": f"the lead is not significant after Holm correction over {n_tests} tests",
           "seed": "the lead is within the between-seed spread", "": ""}
    ties: dict[str, list[str]] = {k: [] for k in why}
    for r in dec[dec["status"] != "best"].itertuples():
        kind = next(k for k in why if k in r.reason)
        ties[kind].append(f"{r.metric} ({r.leader} leads {r.runner_up} by {_amount(res, r.metric, r.lead)})"
                          if kind else f"{r.metric} ({r.reason})")
    for kind, items in ties.items():
        if items:
            out.append(f"No system is best on {_join(items)}" + (f": {why[kind]}." if why[kind] else "."))
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & (res.aggregates["source"] != "input")]
    for r in dec.itertuples():  # a flagged system that would have led on its mean
        rows = agg[agg["metric"] == r.metric].dropna(subset=["mean"])
        if len(rows):
            top = rows.loc[rows["mean"].idxmin() if bool(rows["lower_better"].iloc[0]) else rows["mean"].idxmax()]
            if res.flags(dataset, str(top["system"])):
                out.append(f"The flagged {top['system']} has the best {r.metric} mean but is not ranked.")
    return out


def _seeds(res: Results, dataset: str) -> list[str]:
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & (res.aggregates["source"] == "trained")]
    agg = agg[[not res.flags(dataset, s) for s in agg["system"]]]  # healthy ones
    if agg.empty:
        return []
    if (agg["n_seeds"] < 2).all():
        return [("Each trained system has one seed: the between-seed spread is unknown, so differences between "
                 "trained systems may be seed noise.")]
    above, within = [], []
    for metric, group in agg.groupby("metric", sort=False):
        group = group.dropna(subset=["mean"])
        if len(group) < 2:
            continue
        spread = float(group["seed_sd"].max())
        (above if float(group["mean"].max() - group["mean"].min()) > spread else within).append(metric)
    if not above and not within:
        sds = ", ".join(f"{r.system} {r.metric} {fmt(r.seed_sd)}" for r in agg.itertuples()
                        if not math.isnan(r.seed_sd))
        return [f"Seed-to-seed spread (sd of per-seed means): {sds}."] if sds else []
    text = "Differences between trained systems exceed the between-seed spread on " + (
        _join(above) if above else "no metric")
    return [text + (f"; not on {_join(within)} (called ties)." if within else ".")]


def _caveats(res: Results) -> str:
    trained = [f"{s}: {res.labels[s].removeprefix('trained here: ')}" for s in res.systems()
               if System.parse(s).source == "trained" and res.labels.get(s, "").startswith("trained here: ")]
    parts = []
    if trained:
        parts.append(f"trained-here systems used {'; '.join(trained)}; not the papers' settings ({PAPER})")
    if any(System.parse(s).source == "released" for s in res.systems()):
        parts.append("released systems are the authors' checkpoints, trained at paper settings")
    sizes = [f"{d}: {res.n_images(d)} images from {res.n_scenes(d)} scenes" for d in res.datasets]
    parts.append("; ".join(sizes) + " (intervals resample scenes; p-values are Holm-adjusted over all "
                 f"{int(res.paired['p_holm'].notna().sum())} paired tests)")
    parts += [n for n in res.health_notes if "not checked" in n]
    return "Caveats: " + "; ".join(parts) + "."


def verdict(res: Results) -> dict:
    """``{"datasets": [(name, [sentence])], "caveats": line}`` for the top of the report."""
    out = []
    for dataset in res.datasets:
        n_systems = len([s for s in res.systems(dataset) if s != "input"])
        sentences = [(f"{res.n_images(dataset)} images from {res.n_scenes(dataset)} scenes, {n_systems} systems "
                      "besides the input.")]
        sentences += _health(res, dataset) + _leads(res, dataset) + _seeds(res, dataset)
        out.append((dataset, sentences))
    return {"datasets": out, "caveats": _caveats(res)}
