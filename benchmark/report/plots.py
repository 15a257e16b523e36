"""Report figures (matplotlib's Agg canvas, no pyplot state, seaborn palettes), written under
``results/figures/``; each returns its path, or None when the results hold nothing to plot."""
from __future__ import annotations

import math
from pathlib import Path

import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from benchmark.report.data import Results
from benchmark.timing import loss_columns, read_train_log

DPI = 110


def _palette(systems: list[str]) -> dict[str, tuple]:
    return dict(zip(systems, sns.color_palette("colorblind", len(systems))))


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
    colours = _palette(systems)
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _figure(3.4 * cols, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        sub = agg[agg["metric"] == metric].set_index("system").reindex(systems).dropna(subset=["mean"])
        err = [(sub["mean"] - sub["ci_low"]).clip(lower=0), (sub["ci_high"] - sub["mean"]).clip(lower=0)]
        ax.bar(range(len(sub)), sub["mean"], yerr=err, capsize=3, color=[colours[s] for s in sub.index])
        ax.set_xticks(range(len(sub)), [""] * len(sub))
        lower = bool(sub["lower_better"].iloc[0]) if len(sub) else False
        ax.set_title(f"{metric} {'↓' if lower else '↑'}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, color=colours[s]) for s in systems]
    fig.legend(handles, systems, loc="lower center", ncol=min(4, len(systems)), fontsize=8, frameon=False)
    fig.suptitle(f"{dataset}: mean and bootstrap 95% CI over images", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * math.ceil(len(systems) / 4), 1, 1))
    return _save(fig, out, tight=False)


def loss_curves(res: Results, out: Path) -> Path | None:
    """Training-loss terms against iteration, one panel per run (rolling mean over 5% of the run)."""
    logs = {run: read_train_log(Path(t["dir"]) / "train_log.csv") for run, t in res.training.items()}
    logs = {run: log for run, log in logs.items() if len(log) and loss_columns(log)}
    if not logs:
        return None
    fig = _figure(4.2 * len(logs), 3.2)
    axes = fig.subplots(1, len(logs), squeeze=False)
    for ax, (run, log) in zip(axes.flat, logs.items()):
        x = log["iter"] if "iter" in log.columns else log.index
        window = max(1, len(log) // 20)
        for col in loss_columns(log):
            ax.plot(x, log[col].rolling(window, min_periods=1).mean(), label=col, lw=1.2)
        ax.set_title(run, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes.flat[0].set_ylabel("loss")
    return _save(fig, out)


def quality_vs_training_time(res: Results, dataset: str, metric: str, out: Path) -> Path | None:
    """Mean quality (with CI) of each trained run against its training wall time."""
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & (res.aggregates["metric"] == metric)]
    pts = [(r.system, res.training[r.system]["wall_s"], r.mean, r.ci_low, r.ci_high, r.lower_better)
           for r in agg.itertuples() if res.training.get(r.system, {}).get("wall_s")]
    if not pts:
        return None
    fig = _figure(5.2, 3.6)
    ax = fig.subplots()
    colours = _palette([p[0] for p in pts])
    for name, wall, mean, lo, hi, _ in pts:
        ax.errorbar(wall, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", capsize=3, color=colours[name], label=name)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"{metric} {'↓' if pts[0][5] else '↑'}")
    ax.set_title(f"{dataset}: quality vs training time", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def inference_speed(res: Results, out: Path) -> Path | None:
    """Median ms per megapixel per system with the p25–p75 range, labelled by device."""
    rows = []
    for system, t in sorted(res.inference.items()):
        for s in t["sizes"]:
            rows.append((f"{system}\n{s['megapixels']} MP, {t['device']}", s["ms_per_mp_median"],
                         s["ms_per_mp_median"] - s["ms_per_mp_p25"], s["ms_per_mp_p75"] - s["ms_per_mp_median"]))
    if not rows:
        return None
    fig = _figure(6.5, 0.5 * len(rows) + 1.2)
    ax = fig.subplots()
    colours = sns.color_palette("colorblind", len(rows))
    ax.barh(range(len(rows)), [r[1] for r in rows], xerr=[[r[2] for r in rows], [r[3] for r in rows]], capsize=3,
            color=colours)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms per megapixel (median, p25–p75) ↓")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out)
