"""Report figures (PNG, matplotlib Agg); None where there is nothing to plot.

Every system has one colour in every figure (:mod:`benchmark.report.colours`); a flagged system is
grey (hatched bars) and labelled so. Metric bars; quality against cost (inference ms/MP and training
time from zero; systems that run one network share one cost point, labelled with their names; seeds
as error bars, the Pareto front marked); per-image paired lines (one line per test image across
systems, the outlier named); training-loss curves with the phases shaded and the weighted terms that
add up to the logged total; inference ms/MP per network. Figures with timings state how and where
they were taken.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from benchmark.report.colours import FLAGGED_HATCH, colour
from benchmark.report.data import Results
from benchmark.report.performance import network_groups, pooled
from benchmark.system import System
from benchmark.timing import read_train_log

DPI = 110
PHASE_COLOURS = {"ce_init": "#b39ddb", "warmup": "#bdbdbd", "enhance": "#a5d6a7", "prompt": "#ffcc80"}
PHASE_NAMES = {"ce_init": "prompt init (CE)", "warmup": "warm-up (reconstruction)", "enhance": "enhance",
               "prompt": "prompt refinement"}


def flagged(res: Results, system: str, dataset: str | None = None) -> bool:
    """Whether ``system`` has a health flag on ``dataset`` (None: on any dataset)."""
    return any(res.flags(d, system) for d in ([dataset] if dataset else res.datasets))


def label(res: Results, system: str, dataset: str | None = None) -> str:
    return f"{system} (flagged)" if flagged(res, system, dataset) else system


def _footer(fig: Figure, text: str | None) -> float:
    """``text`` (how and where timings were taken) under the figure; the height it takes (figure fraction)."""
    if not text:
        return 0.0
    import textwrap

    lines = textwrap.wrap(text, int(fig.get_figwidth() * 15))
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="#444444", va="bottom", ha="left")
    return (0.02 + 0.11 * len(lines)) / fig.get_figheight()


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: Path, tight: bool = True) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    return out


def metric_bars(res: Results, dataset: str, metrics: list[str], out: Path) -> Path | None:
    """One panel per metric: mean per system with its bootstrap 95% CI as error bars."""
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & res.aggregates["metric"].isin(metrics)]
    metrics = [m for m in metrics if m in set(agg["metric"])]
    if not metrics:
        return None
    systems = [s for s in res.systems(dataset) if s in set(agg["system"])]
    grey = {s: flagged(res, s, dataset) for s in systems}
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _figure(3.4 * cols, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        sub = agg[agg["metric"] == metric].set_index("system").reindex(systems).dropna(subset=["mean"])
        err = [(sub["mean"] - sub["ci_low"]).clip(lower=0), (sub["ci_high"] - sub["mean"]).clip(lower=0)]
        bars = ax.bar(range(len(sub)), sub["mean"], yerr=err, capsize=3,
                      color=[colour(s, grey[s]) for s in sub.index])
        for bar, system in zip(bars, sub.index):
            if grey[system]:
                bar.set_hatch(FLAGGED_HATCH)
                bar.set_edgecolor("white")
        ax.set_xticks(range(len(sub)), [""] * len(sub))
        lower = bool(sub["lower_better"].iloc[0]) if len(sub) else False
        ax.set_title(f"{metric} {'↓' if lower else '↑'}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, facecolor=colour(s, grey[s]), hatch=FLAGGED_HATCH if grey[s] else None,
                         edgecolor="white") for s in systems]
    fig.legend(handles, [label(res, s, dataset) for s in systems], loc="lower center", ncol=min(4, len(systems)),
               fontsize=8, frameon=False)
    fig.suptitle(f"{dataset}: mean and bootstrap 95% CI over images (flagged systems grey, hatched)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * math.ceil(len(systems) / 4), 1, 1))
    return _save(fig, out, tight=False)


# ------------------------------------------------------------------------- quality and cost
def headline_metrics(res: Results, dataset: str) -> list[str]:
    """The first full-reference and the first no-reference metric scored on ``dataset`` (display order)."""
    have = set(res.aggregates[res.aggregates["dataset"] == dataset]["metric"])
    scored = [m for m in res.metrics() if m in res.metric_info and m in have]
    picks = [next((m for m in scored if res.metric_info[m].get("mode") == mode), None) for mode in ("FR", "NR")]
    return [m for m in picks if m] or scored[:1]


def _seed_value(x: object) -> int | None:
    text = str(x).strip() if x is not None else ""
    if not text or text.lower() in ("nan", "none", "<na>"):
        return None
    return int(float(text))


def seed_means(res: Results, dataset: str, metric: str) -> pd.DataFrame:
    """Per system: mean over seeds of the per-seed mean over images, SD over seeds, number of seeds."""
    sc = res.scores[(res.scores["dataset"] == dataset) & (res.scores["metric"] == metric)]
    if sc.empty:
        return pd.DataFrame(columns=["system", "mean", "sd", "seeds"])
    seeds = sc["seed"].map(_seed_value) if "seed" in sc.columns else pd.Series(None, index=sc.index, dtype=object)
    per_seed = sc.assign(seed=seeds.fillna(-1)).groupby(["system", "seed"])["value"].mean().reset_index()
    out = per_seed.groupby("system")["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"std": "sd", "count": "seeds"}).fillna({"sd": 0.0})


def _pareto(points: list[tuple[float, float]], lower_better: bool) -> list[int]:
    """Indices of the non-dominated points (cheaper or better than every other), by increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1] if lower_better else -points[i][1]))
    front, best = [], math.inf
    for i in order:
        q = points[i][1] if lower_better else -points[i][1]
        if q < best:
            front.append(i)
            best = q
    return front


def _cost_panel(ax: Axes, pts: list[dict], metric: str, lower: bool, xlabel: str, input_mean: float | None) -> None:
    """Quality against cost from zero; points of one shared network (``group`` > 1 names) stand on one x,
    joined by a thin line and labelled with their names."""
    for p in pts:
        marker = {"released": "s", "trained": "o"}.get(System.parse(p["system"]).source, "D")
        ax.errorbar(p["x"], p["y"], xerr=p.get("xerr"), yerr=p["yerr"], fmt=marker, ms=6, capsize=3,
                    color=p["colour"], label=p["label"])
    shared: dict[float, list[dict]] = {}
    for p in pts:
        if len(p.get("group", [])) > 1:
            shared.setdefault(p["x"], []).append(p)
    for x, group in shared.items():
        ys = [p["y"] for p in group]
        ax.plot([x, x], [min(ys), max(ys)], color="black", lw=0.6, alpha=0.5)
        ax.annotate("one network:\n" + "\n".join(p["label"] for p in group), (x, max(ys)), xytext=(6, 0),
                    textcoords="offset points", fontsize=6, va="top", color="#333333")
    healthy = [p for p in pts if not p["flagged"]]  # a flagged system is never on the front
    front = [healthy[i] for i in _pareto([(p["x"], p["y"]) for p in healthy], lower)]
    if len(front) > 1:
        ax.step([p["x"] for p in front], [p["y"] for p in front], where="post", color="black", lw=0.8, ls=":",
                label="Pareto front (healthy systems)")
    for p in front:
        ax.plot(p["x"], p["y"], "o", ms=11, mfc="none", mec="black", mew=1.0)
    if input_mean is not None:
        ax.axhline(input_mean, color="grey", ls="--", lw=1, label="input (not enhanced)")
    ax.set_xlim(left=0, right=max(p["x"] + (np.max(p["xerr"]) if p.get("xerr") is not None else 0) for p in pts) * 1.25)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.tick_params(labelsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(f"{metric} {'↓' if lower else '↑'}", fontsize=9)
    ax.grid(alpha=0.3)


def quality_vs_cost(res: Results, dataset: str, metrics: list[str], inference: dict[str, dict],
                    runs: dict[str, dict], out: Path, caption: str | None = None) -> Path | None:
    """Rows: ``metrics``; columns: quality against inference ms/MP and against training time, both from zero.

    A point is a system: mean over seeds of its mean over images; error bars are the SD over seeds
    (trained systems with several seeds; released weights have one); ms/MP error bars are p25–p75.
    Systems that run one network (:func:`~benchmark.report.performance.network_groups`) share one
    ms/MP: their timings pooled. Circled points form the Pareto front of the healthy systems (no other
    is both cheaper and better); squares are released weights, dots trained runs; flagged systems are grey.
    ``caption``: how and where the timings were taken, printed under the figure."""
    train_s: dict[str, list[float]] = {}
    for r in runs.values():
        if r["status"] == "done" and r.get("wall_s"):
            train_s.setdefault(r["system"], []).append(float(r["wall_s"]))
    panels = [p for metric in metrics if (p := _cost_points(res, dataset, metric, inference, train_s)) is not None]
    if not panels:
        return None
    fig = _figure(10.5, 3.4 * len(panels) + 1.0)
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (metric, lower, inf, trn, base), (ax_i, ax_t) in zip(panels, axes):
        for ax, pts, text in ((ax_i, inf, "inference: ms per megapixel (median, p25–p75) ↓"),
                              (ax_t, trn, "training time (s, mean ± SD over seeds) ↓")):
            if pts:
                _cost_panel(ax, pts, metric, lower, text, base)
            else:
                ax.text(0.5, 0.5, "no timings in this results folder", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"{dataset}: quality against cost (error bars: SD over seeds; circled: Pareto front of the healthy "
                 "systems; squares: released weights; grey: flagged)", fontsize=10)
    bottom = _footer(fig, caption)
    labels = _figure_legend(fig, axes, bottom)
    fig.tight_layout(rect=(0, bottom + 0.04 + 0.03 * math.ceil(len(labels) / 4), 1, 1))
    return _save(fig, out, tight=False)


def _cost_points(res: Results, dataset: str, metric: str, inference: dict[str, dict],
                 train_s: dict[str, list[float]]) -> tuple[str, bool, list[dict], list[dict], float | None] | None:
    """One row of :func:`quality_vs_cost`: (metric, lower is better, inference points, training points, the
    input's mean); None without points."""
    means = seed_means(res, dataset, metric).set_index("system")
    if means.empty:
        return None
    lower = bool(res.metric_info.get(metric, {}).get("lower_better"))
    look = {s: {"colour": colour(s, flagged(res, s, dataset)), "label": label(res, s, dataset),
                "flagged": flagged(res, s, dataset)} for s in means.index}
    inf = []
    for group in network_groups({s: t for s, t in inference.items() if s in means.index}):
        t = pooled([inference[s] for s in group])
        inf += [{"system": s, "x": t["ms_per_mp_median"], "y": means.at[s, "mean"], "yerr": means.at[s, "sd"],
                 "xerr": [[t["ms_per_mp_median"] - t["ms_per_mp_p25"]], [t["ms_per_mp_p75"] - t["ms_per_mp_median"]]],
                 "group": group, **look[s]} for s in group]
    trn = [{"system": s, "x": float(np.mean(v)), "xerr": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            "y": means.at[s, "mean"], "yerr": means.at[s, "sd"], **look[s]} for s, v in train_s.items()
           if s in means.index]
    if not (inf or trn):
        return None
    return metric, lower, inf, trn, means.at["input", "mean"] if "input" in means.index else None


def _figure_legend(fig: Figure, axes: np.ndarray, bottom: float = 0.0) -> list[str]:
    """One legend below the figure (above ``bottom``, a figure fraction) with each label of ``axes`` once;
    returns the labels."""
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", bbox_to_anchor=(0.5, bottom),
               ncol=min(4, len(labels)), fontsize=8, frameon=False)
    return labels


# ------------------------------------------------------------------------------ per image
ATYPICAL_IQR = 2.0  # an image is atypical beyond this many interquartile ranges from the median pattern


def outlier_image(wide: pd.DataFrame) -> str | None:
    """The image (row) whose differences between systems (columns) are most unlike the other images', if
    any is atypical: each row is centred on its own mean, so an image that is merely harder for every
    system is not picked; deviations from the median pattern are in units of each system's interquartile
    range (SD where that is 0); None when no image is beyond :data:`ATYPICAL_IQR`."""
    centred = wide.sub(wide.mean(axis=1), axis=0)
    dev = centred - centred.median()
    spread = (dev.quantile(0.75) - dev.quantile(0.25)).replace(0, np.nan).fillna(dev.std()).replace(0, 1.0).fillna(1.0)
    score = (dev.abs() / spread).max(axis=1)
    return str(score.idxmax()) if len(score) and score.max() > ATYPICAL_IQR else None


def per_image_lines(res: Results, dataset: str, metrics: list[str], out: Path) -> Path | None:
    """One panel per metric: each test image is a line across the systems (its value, seeds averaged), so a
    single outlying image stands out; the most atypical one (:func:`outlier_image`) is drawn in colour and named."""
    sc = res.scores[(res.scores["dataset"] == dataset) & res.scores["metric"].isin(metrics)]
    metrics = [m for m in metrics if m in set(sc["metric"])]
    if sc.empty or not metrics:
        return None
    systems = [s for s in res.systems(dataset) if s in set(sc["system"])]
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _figure(max(5.5, 0.9 * len(systems) + 2) * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        wide = (sc[sc["metric"] == metric].groupby(["image", "system"])["value"].mean().unstack("system")
                .reindex(columns=systems))
        outlier = outlier_image(wide)
        x = np.arange(len(systems))
        for image, row in wide.iterrows():
            if image != outlier:
                ax.plot(x, row.to_numpy(), color="grey", alpha=max(0.08, min(0.6, 8 / len(wide))), lw=0.9, marker=".")
        if outlier is not None:
            ax.plot(x, wide.loc[outlier].to_numpy(), color="#d62728", lw=1.8, marker="o", label=f"atypical: {outlier}")
        else:
            ax.plot([], [], " ", label=f"no atypical image (> {ATYPICAL_IQR:g} IQR)")
        ax.plot(x, wide.median().to_numpy(), color="black", lw=1.4, ls="--", label="median over images")
        lower = bool(res.metric_info.get(metric, {}).get("lower_better"))
        ax.set_title(f"{metric} {'↓' if lower else '↑'} ({len(wide)} images)", fontsize=10)
        ax.set_xticks(x, [label(res, s, dataset) for s in systems], rotation=25, ha="right", fontsize=7)
        for tick, system in zip(ax.get_xticklabels(), systems):
            if flagged(res, system, dataset):
                tick.set_color("#999999")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{dataset}: per-image values (one line per image)", fontsize=11)
    return _save(fig, out)


# ----------------------------------------------------------------------------------- losses
def loss_weights(method: str) -> dict[str, dict[str, float]]:
    """Per phase, the weight of each logged term in the trainer's total loss (methods/guided_training.py):
    ce_init: ce; warm-up: 25 x identity; enhance: guidance_weight x guidance + 22.5 x identity;
    prompt: 200 x rank."""
    from methods.losses import W_IDENTITY, W_RANK, W_WARMUP
    from methods.registry import METHODS

    cls = METHODS.get(method) if method in METHODS else None
    if cls is not None and getattr(cls, "loss_weights", None):  # a baseline with its own loss (Zero-DCE)
        return cls.loss_weights
    enhance = {"identity": W_IDENTITY}
    if cls is not None:
        enhance = {"guidance": float(cls.guidance_weight), **enhance}
    return {"ce_init": {"ce": 1.0}, "warmup": {"identity": W_WARMUP}, "enhance": enhance, "prompt": {"rank": W_RANK}}


def _segments(phases: pd.Series) -> list[tuple[str, int, int]]:
    """Contiguous runs of one phase: (phase, first row, end row)."""
    change = np.flatnonzero(phases.to_numpy()[1:] != phases.to_numpy()[:-1]) + 1
    bounds = [0, *change.tolist(), len(phases)]
    return [(str(phases.iloc[a]), a, b) for a, b in itertools.pairwise(bounds)]


def weighted_terms(log: pd.DataFrame, weights: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per row, each logged term times its weight in the row's phase (0 where the phase lacks it), one column
    per term labelled with its weights ("identity ×25 warmup, ×22.5 enhance"); and ``residual``: the logged
    ``loss`` minus their sum (zero up to the log's 6 significant digits when the weights are right)."""
    phases = set(log["phase"].astype(str))
    terms, labels = pd.DataFrame(index=log.index), {}
    for phase, w in weights.items():
        rows = log["phase"] == phase
        for term, weight in w.items():
            if term in log.columns and phase in phases:
                if term not in terms.columns:
                    terms[term] = 0.0
                terms.loc[rows, term] = weight * pd.to_numeric(log.loc[rows, term], errors="coerce").fillna(0.0)
                labels.setdefault(term, []).append((phase, weight))
    terms["residual"] = pd.to_numeric(log["loss"], errors="coerce") - terms.sum(axis=1)
    names = {t: f"{t} ×{ws[0][1]:g}" if len({w for _, w in ws}) == 1 else
             f"{t} " + ", ".join(f"×{w:g} {p}" for p, w in ws) for t, ws in labels.items()}
    return terms.rename(columns=names)


def _smooth(frame: pd.DataFrame, segments: list[tuple[str, int, int]]) -> pd.DataFrame:
    """Rolling mean within each phase segment (a tenth of it): linear, so smoothed terms still add up."""
    parts = [frame.iloc[a:b].rolling(max(1, (b - a) // 10), min_periods=1).mean() for _, a, b in segments]
    return pd.concat(parts) if parts else frame


def loss_curves(runs: dict[str, dict], out: Path, flagged_systems: set[str] = frozenset()) -> Path | None:
    """One panel per trained system (its first seed): the logged total loss and the weighted terms that
    make it up, against iteration, phases shaded; log scale (the phases' losses differ by orders). The
    titles of ``flagged_systems`` say so, in grey."""
    logs = _first_logs(runs)
    if not logs:
        return None
    cols = min(2, len(logs))
    rows = math.ceil(len(logs) / cols)
    fig = _figure(6.2 * cols, 3.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    term_colours = dict(zip(["guidance", "identity", "rank", "ce"], sns.color_palette("colorblind", 4)))
    phases_seen: list[str] = []
    for ax, (system, (run, log)) in zip(axes.flat, logs.items()):
        _loss_panel(ax, system, run, log, term_colours, phases_seen)
        if system in flagged_systems:
            ax.set_title(f"{ax.get_title()} (flagged)", fontsize=10, color="#999999")
    for ax in list(axes.flat)[len(logs):]:
        ax.axis("off")
    patches = [Patch(color=PHASE_COLOURS.get(p, "#e0e0e0"), alpha=0.35, label=PHASE_NAMES.get(p, p)) for p in phases_seen]
    fig.legend(handles=patches, loc="lower center", ncol=len(patches), fontsize=8, frameon=False)
    fig.suptitle("Training loss: the weighted terms add up to the logged total in every phase "
                 "(rolling mean over a tenth of each phase)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, out, tight=False)


def _first_logs(runs: dict[str, dict]) -> dict[str, tuple[dict, pd.DataFrame]]:
    """``{system: (run, train log)}`` of each system's first finished run whose log has phases and a loss."""
    first: dict[str, dict] = {}
    for r in runs.values():
        if r["status"] == "done" and r["system"] not in first:
            first[r["system"]] = r
    logs = {}
    for system, r in first.items():
        log = read_train_log(r["log"])
        if len(log) and {"phase", "loss"} <= set(log.columns):
            logs[system] = (r, log.reset_index(drop=True))
    return logs


def _loss_panel(ax: Axes, system: str, run: dict, log: pd.DataFrame, term_colours: dict[str, Any],
                phases_seen: list[str]) -> None:
    """Draw one system's loss panel; append the phases it shows to ``phases_seen``."""
    method = run.get("method") or System.parse(system).method
    segments = _segments(log["phase"].astype(str))
    terms = weighted_terms(log, loss_weights(method))
    residual = float(terms.pop("residual").abs().max())
    x = log["iter"] if "iter" in log.columns else pd.Series(log.index + 1)
    for phase, a, b in segments:
        ax.axvspan(x.iloc[a] - 0.5, x.iloc[b - 1] + 0.5, color=PHASE_COLOURS.get(phase, "#e0e0e0"), alpha=0.35, lw=0)
        if phase not in phases_seen:
            phases_seen.append(phase)
    smooth = _smooth(pd.concat([terms, pd.to_numeric(log["loss"], errors="coerce").rename("total")], axis=1),
                     segments)
    ax.plot(x, smooth["total"].where(smooth["total"] > 0), lw=4, color="black", alpha=0.25, label="total (logged)")
    for col in terms.columns:
        colour = term_colours.get(col.split(" ")[0], "purple")
        ax.plot(x, smooth[col].where(smooth[col] > 0), lw=1.2, color=colour, label=col)
    if residual > 1e-3 * max(1.0, float(log["loss"].abs().max())):
        ax.text(0.01, 0.02, f"terms miss the total by up to {residual:.3g}", transform=ax.transAxes,
                fontsize=7, color="red")
    ax.set_yscale("log")
    seed = "" if run.get("seed") is None else f" (seed {run['seed']})"
    ax.set_title(f"{system}{seed}", fontsize=10)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted terms, smoothed)")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=7, loc="lower right")


# ------------------------------------------------------------------------------- inference
def inference_speed(res: Results, out: Path, caption: str | None = None) -> Path | None:
    """Median ms per megapixel with its p25–p75 from zero, one bar per network: systems that run one network
    (:func:`~benchmark.report.performance.network_groups`) share a bar labelled with their names; a flagged
    system's own bar is grey. ``caption``: how and where the timings were taken."""
    order = {s: i for i, s in enumerate(res.systems())}
    timed = {s: t for s, t in res.inference.items() if t.get("reference_megapixels")}
    if not timed:
        return None
    groups = sorted(network_groups(timed), key=lambda g: min((order.get(s, len(order)), s) for s in g))
    t = [pooled([timed[s] for s in g]) for g in groups]
    names = [[label(res, s) for s in sorted(g, key=lambda s: (order.get(s, len(order)), s))] for g in groups]
    colours = [colour(g[0], flagged(res, g[0])) if len(g) == 1 else (0.45, 0.5, 0.58) for g in groups]
    fig = _figure(7.5, 0.42 * sum(len(n) for n in names) + 0.4 * len(groups) + 1.6)
    ax = fig.subplots()
    bars = ax.barh(range(len(groups)), [r["ms_per_mp_median"] for r in t], capsize=3, color=colours,
                   xerr=[[r["ms_per_mp_median"] - r["ms_per_mp_p25"] for r in t],
                         [r["ms_per_mp_p75"] - r["ms_per_mp_median"] for r in t]])
    for bar, g in zip(bars, groups):
        if len(g) == 1 and flagged(res, g[0]):
            bar.set_hatch(FLAGGED_HATCH)
            bar.set_edgecolor("white")
    ax.set_yticks(range(len(groups)), ["\n".join(n) + ("\n(one network, timings pooled)" if len(n) > 1 else "")
                                       + f"\n{r['reference_megapixels']:g} MP" for n, r in zip(names, t)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("ms per megapixel (median, p25–p75) ↓")
    ax.grid(axis="x", alpha=0.3)
    bottom = _footer(fig, caption)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _save(fig, out, tight=False)


# ------------------------------------------------------------------------------- pipeline
def pipeline_gantt(timeline: dict, out: Path) -> Path | None:
    """The stages of a ``bench repro`` run (``timing/pipeline.json``) as bars on their workers' rows, coloured by
    stage kind; failed stages hatched."""
    from benchmark.engine.timeline import seconds_since

    stages = [s for s in timeline.get("stages", []) if s.get("start") and s.get("end") and s.get("worker")]
    if not stages or not timeline.get("started"):
        return None
    workers = sorted({s["worker"] for s in stages})
    kinds = sorted({s["stage"].split("@")[0] for s in stages})
    colours = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    span = max(seconds_since(timeline["started"], s["end"]) for s in stages) or 1.0
    fig = _figure(9, 0.45 * len(workers) + 1.4)
    ax = fig.subplots()
    for s in stages:
        left, width = seconds_since(timeline["started"], s["start"]), seconds_since(s["start"], s["end"])
        row = workers.index(s["worker"])
        ax.barh(row, width, left=left, color=colours[s["stage"].split("@")[0]], edgecolor="white", lw=0.5,
                hatch="//" if s.get("status") == "failed" else None)
        if width > 0.06 * span:
            ax.text(left + width / 2, row, s["stage"].split("@")[-1], ha="center", va="center", fontsize=6,
                    clip_on=True)
    ax.set_yticks(range(len(workers)), workers, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, span * 1.01)
    ax.set_xlabel("seconds since the run started")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=colours[k], label=k) for k in kinds], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1), frameon=False)
    return _save(fig, out)
