"""The report's opening: one short sentence per dataset, then the details, then one line of caveats.

The opening sentence says what the test set can show: that it cannot separate systems at all (and how
many scenes it would need), or which system is best on which metrics and on how many metrics none is
separated. The details state the family of tests behind "best" (which systems, how many tests, the
smallest lead that can be significant), who is healthy, who is flagged and why, each lead with its
interval and cost, and whether differences between trained systems exceed the seed-to-seed spread.
"""
from __future__ import annotations

import math

import pandas as pd

from benchmark.health import Flag
from benchmark.report.data import SKIPPED_LABEL, Results
from benchmark.report.tables import fmt, fmt_p, unit
from benchmark.stats import ALPHA, MIN_SCENES, NOT_SEPARATED, PRIMARY, SECONDARY, TEST
from benchmark.system import System

PAPER = "CLIP ViT-B/32 guidance, CLIP RN101 identity, 512-px crops, the paper schedule"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _flag_phrase(f: Flag) -> str:
    return {"no-effect": "had no effect", "degenerate": "produced degenerate output",
            "diverged": "diverged in training", "stale": "has stale results"}[f.flag] + f": {f.value}"


def _primary(res: Results, dataset: str) -> pd.DataFrame:
    fam = res.families
    return fam[(fam["dataset"] == dataset) & (fam["family"] == PRIMARY)] if len(fam) else fam


def headline(res: Results, dataset: str) -> str:
    """The one sentence that opens the verdict of ``dataset``."""
    fam = _primary(res, dataset)
    dec = res.decisions[res.decisions["dataset"] == dataset]
    if len(fam) and not fam["separable"].any():
        r = fam.iloc[0]
        need = f" (a lead of one sd of its per-scene differences needs {r.scenes_for_d1})" if r.scenes_for_d1 else ""
        return (f"This test set cannot separate systems: it has {_plural(int(r.n_scenes), 'scene')}, and no system is "
                f"called best on fewer than {MIN_SCENES}{need}.")
    if dec.empty or not (dec["status"].isin(["best", NOT_SEPARATED])).any():
        return "No two healthy systems to compare." if len(dec) else "No scores."
    best = dec[dec["status"] == "best"]
    parts = [f"{leader} is best on {_join(list(g['metric']))}" for leader, g in best.groupby("best", sort=False)]
    open_ = dec[dec["status"] == NOT_SEPARATED]
    if len(open_):
        n = len(open_)
        parts.append(f"no system is separated on {'any metric' if best.empty else _plural(n, 'other metric')}"
                     if best.empty or n > 3 else f"none is separated on {_join(list(open_['metric']))}")
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] if best.empty else text) + "."


def family_sentence(res: Results, dataset: str) -> list[str]:
    """Which tests decide "best" on ``dataset`` and what they can show; where the other tests are."""
    fam = _primary(res, dataset)
    if fam.empty:
        return []
    r = fam.loc[fam["n_tests"].idxmax()]
    systems = r.systems.split()
    several = fam["n_tests"].nunique() > 1
    tests = f"{'up to ' if several else ''}{_plural(int(r.n_tests), TEST.split(' on ')[0])}"
    text = (f"Best is decided per metric among the {len(systems)} healthy trained and released systems "
            f"({_join(systems)}): {tests} on "
            f"per-scene mean differences ({_plural(int(r.n_scenes), 'scene')}) per metric, Holm-adjusted at "
            f"{ALPHA:g} within each metric")
    if r.separable and not math.isnan(r.d_crit):
        text += (f"; a lead is significant only when it exceeds {r.d_crit:.1f} standard deviations of its "
                 "per-scene differences")
    others = res.families[(res.families["dataset"] == dataset) & (res.families["family"] == SECONDARY)]
    if len(others):
        names = sorted({s for row in others.itertuples() for s in row.systems.split()} - set(systems),
                       key=lambda s: (s != "input", s))
        names = ["the input" if s == "input" else s for s in names]
        text += (f". Comparisons with {_join(names)} form a separate family (Holm within it; "
                 "tables/paired.csv), never used for best")
    return [text + "."]


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


def _interval(res: Results, r: object) -> str:
    """``[low, high]`` of a decision's lead (leader minus runner-up, positive favours the leader)."""
    lo, hi = getattr(r, "lead_low", math.nan), getattr(r, "lead_high", math.nan)
    return "" if math.isnan(lo) else f" [{fmt(lo, r.lead)}, {fmt(hi, r.lead)}]"


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
    for leader, group in dec[dec["status"] == "best"].groupby("best", sort=False):
        items = [f"{r.metric} (+{_amount(res, r.metric, r.lead)}{_interval(res, r)} over {r.runner_up}, "
                 f"p_holm {fmt_p(r.p_holm)})" for r in group.itertuples()]
        cost = _cost(res, str(leader))
        out.append(f"{leader} is best on {_join(items)}" + (f"; cost: {cost}." if cost else "."))
    why = {"not significant": "lead not significant", "seed-to-seed": "lead within the seed-to-seed spread",
           "not worse": "runner-up not worse on the common images", "cannot separate": "too few scenes"}
    groups: dict[str, list[str]] = {}
    for r in dec[dec["status"] == NOT_SEPARATED].itertuples():
        kind = next((k for k in why if k in r.reason), "")
        p = "" if kind == "cannot separate" else f", p_holm {fmt_p(r.p_holm)}"  # too few scenes: p is not used
        item = (f"{r.metric} ({r.leader} leads {r.runner_up} by {_amount(res, r.metric, r.lead)}{_interval(res, r)}{p})"
                if kind else f"{r.metric} ({r.reason})")
        groups.setdefault(kind, []).append(item)
    for kind, items in groups.items():
        out.append(f"Not separated{': ' + why[kind] if kind else ''}: {_join(items)}.")
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
        return [("Each trained system has one seed: the seed-to-seed spread is unknown, so differences between "
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
    text = "Differences between trained systems exceed the seed-to-seed spread on " + (
        _join(above) if above else "no metric")
    return [text + (f"; not on {_join(within)}." if within else ".")]


def _caveats(res: Results) -> str:
    trained = [f"{s}: {res.labels[s].removeprefix('trained here: ')}" for s in res.systems()
               if System.parse(s).source == "trained" and res.labels.get(s, "").startswith("trained here: ")]
    parts = []
    if trained:
        parts.append(f"trained-here systems used {'; '.join(trained)}; not the papers' settings ({PAPER})")
    if any(System.parse(s).source == "released" for s in res.systems()):
        parts.append("released systems are the authors' checkpoints, trained at paper settings")
    sizes = [f"{d}: {res.n_images(d)} images from {res.n_scenes(d)} scenes" for d in res.datasets]
    parts.append("; ".join(sizes) + " (intervals resample scenes; the t-tests assume roughly normal per-scene "
                 "differences)")
    parts += [n for n in res.health_notes if "not checked" in n]
    return "Caveats: " + "; ".join(parts) + "."


def verdict(res: Results) -> dict:
    """``{"datasets": [(name, opening sentence, [detail sentences])], "caveats": line}`` for the top of the report."""
    out = []
    for dataset in res.datasets:
        n_systems = len([s for s in res.systems(dataset) if s != "input"])
        details = [(f"{res.n_images(dataset)} images from {res.n_scenes(dataset)} scenes, {n_systems} systems "
                    "besides the input.")]
        details += family_sentence(res, dataset) + _health(res, dataset) + _leads(res, dataset) + _seeds(res, dataset)
        out.append((dataset, headline(res, dataset), details))
    return {"datasets": out, "caveats": _caveats(res)}
