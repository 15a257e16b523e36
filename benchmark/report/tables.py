"""Metric and cost tables as plain cells, rendered to terminal text, Markdown or HTML.

Headers carry ↑/↓ from each metric's stored ``lower_better``; the best system per metric
(excluding the unprocessed input) is marked; cells read ``mean ± CI half-width``.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

from benchmark.report.data import Results
from benchmark.stats import best_systems

NA = "n/a"


def fmt(x: float | None, ref: float | None = None) -> str:
    """Numbers with 4 significant figures-ish: 2 decimals from 10, 3 from 1, else 4."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    mag = abs(ref if ref is not None else x)
    return f"{x:.{2 if mag >= 10 else 3 if mag >= 1 else 4}f}"


def arrow(lower_better: bool | None) -> str:
    return "" if lower_better is None else (" ↓" if lower_better else " ↑")


@dataclass
class Table:
    """Header and rows of display strings; ``bold[(row, col)]`` marks best cells; notes go below;
    ``source`` is the raw CSV/JSON behind the table, relative to the results folder (linked below it)."""

    headers: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    source: str | None = None

    def text(self) -> str:
        cells = [[c + ("*" if (i, j) in self.bold else "") for j, c in enumerate(r)] for i, r in enumerate(self.rows)]
        widths = [max(len(h), *(len(r[j]) for r in cells)) if cells else len(h) for j, h in enumerate(self.headers)]
        line = "  ".join(h.ljust(w) for h, w in zip(self.headers, widths))
        body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
        notes = ["* best per metric (input excluded)"] if self.bold else []
        return "\n".join([line, "-" * len(line), *body, *notes, *self.notes])

    def markdown(self) -> str:
        def cell(i: int, j: int, c: str) -> str:
            c = c.replace("|", "\\|")
            return f"**{c}**" if (i, j) in self.bold else c

        lines = ["| " + " | ".join(self.headers) + " |", "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(cell(i, j, c) for j, c in enumerate(r)) + " |" for i, r in enumerate(self.rows)]
        notes = self.notes + ([f"raw data: [{self.source}]({self.source})"] if self.source else [])
        return "\n".join(lines + ([""] + [f"{n}  " for n in notes] if notes else []))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{'<b>' + html.escape(c) + '</b>' if (i, j) in self.bold else html.escape(c)}</td>"
                             for j, c in enumerate(r)) + "</tr>" for i, r in enumerate(self.rows))
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in self.notes)
        if self.source:
            src = html.escape(self.source, quote=True)
            notes += f"<p class='note'>raw data: <a class='raw' href='{src}'>{src}</a></p>"
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def metric_table(res: Results, dataset: str, metrics: list[str] | None = None, systems: list[str] | None = None,
                 with_timing: bool = True) -> Table:
    """Systems x metrics (mean ± 95% CI half-width) for one dataset, plus inference and training cost."""
    metrics = metrics or res.metrics()
    systems = systems or res.systems(dataset)
    agg = res.aggregates[res.aggregates["dataset"] == dataset]
    best = best_systems(agg)
    by = {(r.system, r.metric): r for r in agg.itertuples()}
    headers = ["system"] + [m + arrow(res.metric_info.get(m, {}).get("lower_better")) for m in metrics]
    if with_timing:
        headers += ["n", "ms/MP ↓", "train s ↓"]
    table = Table(headers, [])
    for i, system in enumerate(systems):
        row = [system]
        for j, m in enumerate(metrics, start=1):
            r = by.get((system, m))
            if m in res.unavailable and r is None:
                row.append(NA)
            elif r is None:
                row.append("–")
            else:
                half = (r.ci_high - r.ci_low) / 2 if not math.isnan(r.ci_high) else math.nan
                row.append(f"{fmt(r.mean)} ± {fmt(half, r.mean)}")
                if best.get((dataset, m)) == system:
                    table.bold.add((i, j))
        if with_timing:
            ns = [r.n for (s, _), r in by.items() if s == system]
            timing = res.inference.get(system)
            train = res.training.get(system, {})
            row += [str(max(ns)) if ns else "0", fmt(timing["ms_per_mp_median"]) if timing else "–",
                    fmt(train.get("wall_s")) if train.get("wall_s") else "–"]
        table.rows.append(row)
    for m in metrics:
        if m in res.unavailable:
            table.notes.append(f"{NA} {m}: {res.unavailable[m]}")
    devices = sorted({f"{t['device']} ({t['machine']})" for s, t in res.inference.items() if s in systems})
    if with_timing and devices:
        table.notes.append("ms/MP: median over repeats after warm-up, on " + "; ".join(devices))
    return table


def aggregates_frame(res: Results, dataset: str, metrics: list[str], systems: list[str]) -> pd.DataFrame:
    """The aggregate rows behind :func:`metric_table`, with inference ms/MP, for CSV/JSON output."""
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & res.aggregates["system"].isin(systems)
                         & res.aggregates["metric"].isin(metrics)].copy()
    agg["ms_per_mp"] = agg["system"].map(lambda s: res.inference.get(s, {}).get("ms_per_mp_median"))
    return agg


def timing_table(res: Results, systems: list[str] | None = None) -> Table:
    """Inference cost per system: ms/MP median [p25, p75], device, parameters, FLOPs per pixel."""
    table = Table(["system", "ms/MP median ↓", "p25–p75", "size (MP)", "repeats", "device", "params", "FLOPs/pixel"], [])
    for system, t in sorted(res.inference.items()):
        if systems and system not in systems and system != "network":
            continue
        s = max(t["sizes"], key=lambda x: x["megapixels"])
        table.rows.append([system, fmt(t["ms_per_mp_median"]), f"{fmt(s['ms_per_mp_p25'])}–{fmt(s['ms_per_mp_p75'])}",
                           ", ".join(str(x["megapixels"]) for x in t["sizes"]), str(t["repeats"]),
                           f"{t['device']} ({t['machine']})", f"{t['params']:,}", f"{t['flops_per_pixel']:,}"])
    return table


def training_table(res: Results) -> Table:
    """Training cost per run: status, wall time, iterations, s/iter by phase, peak memory."""
    table = Table(["run", "status", "wall s", "iterations", "s/iter by phase", "peak MB"], [])
    for run, t in res.training.items():
        phases = "; ".join(f"{p}: {fmt(v.get('s_per_iter'))} ({v.get('iterations', '?')} it)" for p, v in t["phases"].items())
        table.rows.append([run, t["status"] + (f" ({t['reason']})" if t.get("reason") else ""), fmt(t.get("wall_s")),
                           str(t.get("iterations") or "–"), phases or "–", fmt(t.get("peak_memory_mb"))])
    return table


def ratio_table(res: Results) -> Table:
    table = Table(["a", "b", "quantity", "a", "b", "b / a"], [])
    for r in res.ratios:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] else (r["note"] or "–")
        table.rows.append([r["a"], r["b"], r["quantity"], fmt(r["a_value"]), fmt(r["b_value"]), ratio])
    return table
