"""Metric and cost tables as plain cells, rendered to terminal text, Markdown or HTML.

Headers carry ↑/↓ from each metric's stored ``lower_better`` and the unit; a cell is bold only for
a system the decision in :func:`benchmark.stats.best_systems` calls best (healthy, significant lead
in the primary family after Holm correction, beyond the seed spread); cells read ``mean ± CI half-width``. Systems with a
health flag are greyed (HTML) and say why. Columns with no value in any row are not shown.
"""
from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from benchmark.health import RULES
from benchmark.report.results_loader import SKIPPED_LABEL, Results
from benchmark.report.timing_text import inference_method

NA = "n/a"
EMPTY = ("–", "")
UNITS = {"psnr": "dB", "ssim": "0–1", "lpips": "0–1", "musiq": "score ≈0–100", "niqe": "score ≈0–100",
         "brisque": "score ≈0–150", "piqe": "score 0–100"}  # for metrics without a stored score range


def fmt(x: float | None, ref: float | None = None) -> str:
    """Numbers with 4 significant figures-ish: 2 decimals from 10, 3 from 1, else 4."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    mag = abs(ref if ref is not None else x)
    return f"{x:.{2 if mag >= 10 else 3 if mag >= 1 else 4}f}"


def arrow(lower_better: bool | None) -> str:
    return "" if lower_better is None else (" ↓" if lower_better else " ↑")


def unit(metric: str, info: dict | None = None) -> str:
    """The unit of a metric's values: dB for PSNR, else its score range (pyiqa's, as stored)."""
    base = metric.partition("@")[0]
    if base == "psnr":
        return "dB"
    rng = (info or {}).get("score_range")
    if rng:
        lo, _, hi = str(rng).partition(",")
        approx = "≈" if "~" in str(rng) else ""
        text = f"{lo.strip(' ~')}–{hi.strip(' ~')}"
        return text if text == "0–1" else f"score {approx}{text}"
    return UNITS.get(base, "score")


def metric_header(metric: str, info: dict | None) -> str:
    return f"{metric}{arrow((info or {}).get('lower_better'))} ({unit(metric, info)})"


@dataclass
class Table:
    """Header and rows of display strings; ``bold[(row, col)]`` marks best cells; notes go below;
    ``source`` is the raw CSV/JSON behind the table, relative to the results folder (linked below it)."""

    headers: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    grey: set[int] = field(default_factory=set)  # rows of flagged systems
    source: str | None = None
    bold_note: str = ("* best: a healthy system's lead, significant after Holm correction among the healthy systems "
                      "and beyond the seed spread")

    def _columns(self) -> list[int]:
        """Indices of the columns shown: the first, and every one with a value in some row."""
        if not self.rows:
            return list(range(len(self.headers)))
        return [j for j in range(len(self.headers)) if j == 0 or any(r[j] not in EMPTY for r in self.rows)]

    def text(self, width: int | None = None) -> str:
        """Aligned plain text; with ``width``, columns that do not fit wrap into further blocks (each repeating
        the first column), over-long cells are cut with ``…`` and notes are wrapped."""
        cols = self._columns()
        cells = [[self.headers[j] for j in cols]]
        cells += [[r[j] + ("*" if (i, j) in self.bold else "") for j in cols] for i, r in enumerate(self.rows)]
        notes = [self.bold_note] if self.bold else []
        notes += self.notes
        if width is None:
            return "\n".join([*_blocks(cells, None), *notes])
        wrapped = [line for n in notes for line in textwrap.wrap(n, width, subsequent_indent="  ")]
        return "\n".join([*_blocks(cells, width), *wrapped])

    def markdown(self) -> str:
        def cell(i: int, j: int, c: str) -> str:
            c = c.replace("|", "\\|")
            return f"**{c}**" if (i, j) in self.bold else c

        cols = self._columns()
        lines = ["| " + " | ".join(self.headers[j] for j in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(cell(i, j, r[j]) for j in cols) + " |" for i, r in enumerate(self.rows)]
        notes = self.notes + ([f"raw data: [{self.source}]({self.source})"] if self.source else [])
        return "\n".join(lines + ([""] + [f"{n}  " for n in notes] if notes else []))

    def html(self) -> str:
        cols = self._columns()
        head = "".join(f"<th>{html.escape(self.headers[j])}</th>" for j in cols)
        body = "".join(
            ("<tr class='flagged'>" if i in self.grey else "<tr>")
            + "".join(f"<td>{'<b>' + html.escape(r[j]) + '</b>' if (i, j) in self.bold else html.escape(r[j])}</td>"
                      for j in cols) + "</tr>" for i, r in enumerate(self.rows))
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in self.notes)
        if self.source:
            src = html.escape(self.source, quote=True)
            notes += f"<p class='note'>raw data: <a class='raw' href='{src}'>{src}</a></p>"
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def _blocks(cells: list[list[str]], width: int | None) -> list[str]:
    """Lines of the table ``cells`` (header row first), in blocks of columns that fit ``width``."""
    first = max(len(r[0]) for r in cells)
    room = None if width is None else max(width - first - 2, 8)
    clip = [[c if room is None or len(c) <= room or j == 0 else c[:room - 1] + "…" for j, c in enumerate(r)]
            for r in cells]
    widths = [max(len(r[k]) for r in clip) for k in range(len(clip[0]))]
    groups: list[list[int]] = [[]]
    for k in range(1, len(widths)):
        if groups[-1] and room is not None and sum(widths[i] + 2 for i in groups[-1]) + widths[k] > room:
            groups.append([])
        groups[-1].append(k)
    lines: list[str] = []
    for n, group in enumerate(groups):
        ks = [0, *group]
        rows = ["  ".join(r[k].ljust(widths[k]) for k in ks).rstrip() for r in clip]
        lines += ([""] if n else []) + [rows[0], "-" * max(len(r) for r in rows), *rows[1:]]
    return lines


def metric_table(res: Results, dataset: str, metrics: list[str] | None = None, systems: list[str] | None = None,
                 with_timing: bool = True) -> Table:
    """Systems x metrics (mean ± 95% CI half-width; the seed sd of trained systems with several seeds) for one
    dataset, with where each system comes from, its health, and inference and training cost."""
    metrics = metrics or res.metrics()
    systems = systems or res.systems(dataset)
    agg = res.aggregates[res.aggregates["dataset"] == dataset]
    by = {(r.system, r.metric): r for r in agg.itertuples()}
    headers = ["system", "from"] + [metric_header(m, res.metric_info.get(m)) for m in metrics]
    headers += ["scored/given", "health"]
    if with_timing:
        headers += ["ms/MP ↓", "train s ↓"]
    table = Table(headers, [])
    seeded = False
    for i, system in enumerate(systems):
        row = [system, res.labels.get(system, "")]
        for j, m in enumerate(metrics, start=2):
            cell, seeds, best = _score_cell(res, by.get((system, m)), m)
            row.append(cell)
            seeded |= seeds
            if best:
                table.bold.add((i, j))
        flags = res.flags(dataset, system)
        scored = [by[(system, m)].n for m in metrics if (system, m) in by]
        row += [scored_given(res, dataset, system, scored),
                "; ".join(f.text() for f in flags) or quiet_health(res, system)]
        if flags:
            table.grey.add(i)
        if with_timing:
            row += _cost_cells(res, system)
        table.rows.append(row)
    table.notes += _metric_notes(res, dataset, metrics, systems, seeded, with_timing)
    if any(a != b for r in table.rows for a, _, b in [r[len(metrics) + 2].partition("/")] if b):
        table.notes.append("scored/given: images scored by every metric / images given; why each dropped image or "
                           "pair was dropped: the report's Skipped section, and the scores' .json files")
    return table


def scored_given(res: Results, dataset: str, system: str, scored: list[int]) -> str:
    """``<images scored by every metric>/<images given>`` (``2/3``: one image or pair was dropped)."""
    given = res.n_given(dataset, system)
    low = min(scored) if scored else 0
    return f"{low}/{given}" if given is not None else str(low)


def _score_cell(res: Results, r: Any, metric: str) -> tuple[str, bool, bool]:
    """(cell text, whether it shows a seed sd, whether it is the best) for aggregate row ``r`` (None: missing)."""
    if r is None:
        return (NA if metric in res.unavailable else "–"), False, False
    half = (r.ci_high - r.ci_low) / 2 if not math.isnan(r.ci_high) else math.nan
    cell = f"{fmt(r.mean)} ± {fmt(half, r.mean)}"
    if r.n_seeds > 1:
        cell += f", seed sd {fmt(r.seed_sd, r.mean)}"
        numerics = (res.envelope.get((r.dataset, r.system, metric)) or {}).get("numerics_sd")
        if numerics is not None:
            cell += f", numerics sd {fmt(numerics, r.mean)}"
    return cell, r.n_seeds > 1, bool(getattr(r, "best", False))


def _cost_cells(res: Results, system: str) -> list[str]:
    """The inference ms/MP and training seconds of ``system``."""
    timing = res.inference.get(system)
    train = res.training.get(system, {})
    return [fmt(timing["ms_per_mp_median"]) if timing else "–",
            fmt(train.get("wall_s")) if train.get("wall_s") else "–"]


def _metric_notes(res: Results, dataset: str, metrics: list[str], systems: list[str], seeded: bool,
                  with_timing: bool) -> list[str]:
    """The notes under :func:`metric_table`."""
    notes = [f"{res.n_images(dataset)} images from {res.n_scenes(dataset)} scenes; ± is the half-width of "
             "the 95% bootstrap interval resampling whole scenes"]
    if seeded:
        notes.append("seed sd: standard deviation of the per-seed means (per-seed rows: tables/seeds.csv); "
                     "values are averaged over seeds per image")
        if res.envelope:
            notes.append("numerics sd: root mean square of the per-seed differences when each seed is retrained "
                         "under perturbed numerics (results/envelope.json; `bench verify` judges a rerun by it)")
    for flag in sorted({f.flag for s in systems for f in res.flags(dataset, s)}):
        notes.append(f"{flag}: {RULES[flag]}; flagged systems are greyed and never best")
    notes += [f"{NA} {m}: {res.unavailable[m]}" for m in metrics if m in res.unavailable]
    if with_timing and any(s in res.inference for s in systems) and (text := inference_method(res.root)):
        notes.append(text)
    return notes


def decision_table(res: Results, dataset: str) -> Table:
    """Per metric: which system is best, or why none is separated (the basis of every bold cell)."""
    table = Table(["metric", "best", "leader", "runner-up", "lead [95% CI]", "p Holm", "seed sd", "why"], [],
                  source="tables/decisions.csv")
    for r in res.decisions[res.decisions["dataset"] == dataset].itertuples():
        info = res.metric_info.get(r.metric)
        u = " dB" if unit(r.metric, info) == "dB" and not math.isnan(r.lead) else ""
        lead = fmt(r.lead) + (f" [{fmt(r.lead_low, r.lead)}, {fmt(r.lead_high, r.lead)}]"
                              if not math.isnan(r.lead_low) else "") + u
        table.rows.append([metric_header(r.metric, info), r.best or f"none ({r.status})", r.leader or "–",
                           r.runner_up or "–", lead, fmt_p(r.p_holm), fmt(r.seed_sd), r.reason])
    table.notes.append("lead: leader minus runner-up in the metric's better direction, with the 95% bootstrap interval "
                       "resampling scenes; p Holm: the paired t-test on per-scene means, Holm-adjusted among the "
                       "healthy systems of this metric")
    return table


def quiet_health(res: Results, system: str) -> str:
    """The health cell of an unflagged system: ``ok``, or why there is nothing to judge."""
    if system == "input":
        return "–"
    return "skipped: no outputs" if res.labels.get(system, "").startswith(SKIPPED_LABEL) else "ok"


def systems_table(res: Results) -> Table:
    """Every system: where it comes from, and its health per dataset (each flag with rule and value)."""
    table = Table(["system", "from", "health"], [])
    several = len(res.datasets) > 1
    for i, system in enumerate(res.systems()):
        flags = [(d, f) for d in res.datasets for f in res.flags(d, system)]
        text = "; ".join(f"{d + ': ' if several else ''}{f.text()} (rule: {f.rule})" for d, f in flags)
        table.rows.append([system, res.labels.get(system, ""), text or quiet_health(res, system)])
        if flags:
            table.grey.add(i)
    table.notes += res.health_notes
    return table


def fmt_p(p: float | None) -> str:
    return "–" if p is None or math.isnan(p) else f"{p:.2g}"


def aggregates_frame(res: Results, dataset: str, metrics: list[str], systems: list[str]) -> pd.DataFrame:
    """The aggregate rows behind :func:`metric_table` (with ``health`` text, ``best``, ``label``, the metric's
    ``decision`` and inference ms/MP), for CSV/JSON output."""
    agg = res.aggregates[(res.aggregates["dataset"] == dataset) & res.aggregates["system"].isin(systems)
                         & res.aggregates["metric"].isin(metrics)].copy()
    agg["ms_per_mp"] = agg["system"].map(lambda s: res.inference.get(s, {}).get("ms_per_mp_median"))
    rows = res.decisions[res.decisions["dataset"] == dataset]
    decisions = {r.metric: f"{r.status}: {r.reason}" for r in rows.itertuples()}
    agg["decision"] = agg["metric"].map(decisions).fillna("")
    return agg


def aggregates_records(res: Results, dataset: str, metrics: list[str], systems: list[str]) -> list[dict]:
    """:func:`aggregates_frame` as JSON-ready records: ``health`` a list of {flag, value, rule}, NaN as None."""
    out = []
    for row in aggregates_frame(res, dataset, metrics, systems).to_dict("records"):
        row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        row["health"] = [f.as_dict() for f in res.flags(dataset, row["system"])]
        out.append(row)
    return out


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
