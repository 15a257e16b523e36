"""Assemble the report from the results folder: tables, figures, grids, provenance, skips."""
from __future__ import annotations

import base64
import datetime as _dt
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from backlit_core.atomic import write_text
from benchmark.report import grids, plots
from benchmark.report.data import Results, load_results, write_tables
from benchmark.report.links import link_tables
from benchmark.report.performance import (
    DEFAULT_DIR,
    inference_table,
    other_runs,
    provenance_line,
    ratio_table,
    training_table,
)
from benchmark.report.published import published_for
from benchmark.report.tables import Table, decision_table, fmt, fmt_p, metric_table, systems_table, unit
from benchmark.report.timing_text import inference_method, training_method
from benchmark.report.verdict import verdict
from benchmark.stats import TEST
from benchmark.system import System
from benchmark.timing import training_runs

MAX_GRID_IMAGES = 40  # per dataset in the HTML grids (every test image of the embedded and SICE sets)
MD_GRID_IMAGES = 3  # in the Markdown report's grid PNG


def _b64_file(path: Path | None) -> str | None:
    return base64.b64encode(path.read_bytes()).decode("ascii") if path else None


def _encoders(seeds: dict[str, dict]) -> str:
    t = next(iter(seeds.values()), {})
    return f"{t.get('encoder') or '–'} (guidance) / {t.get('identity_encoder') or '–'} (identity)"


def random_encoders(runs: dict[str, dict]) -> list[str]:
    """Runs (:func:`~benchmark.timing.training_runs`) trained with a random test encoder
    (``tiny-clip-random``): their numbers mean nothing."""
    return [f"{run}: encoders {t.get('encoders')}" for run, t in runs.items() if t.get("random_encoder")]


def bootstrap_seed(params: dict) -> int:
    """The confidence intervals' bootstrap seed of a run: params ``seed``, else the first training seed."""
    return int(params.get("seed", (params.get("seeds") or [0])[0]))


def setup_rows(res: Results, params: dict | None, seed: int | None = None) -> list[tuple[str, str]]:
    """Key facts of the environment the results came from (provenance.json and training runs).

    ``seed`` is the bootstrap seed this report used (default: the one in provenance.json).
    """
    prov = res.provenance
    dev = prov.get("device", {})
    pk = prov.get("packages", {})
    rows = [
        ("profile", str((params or {}).get("profile") or prov.get("profile") or "–")),
        ("git commit", f"{prov.get('git_commit') or '–'}{' (dirty)' if prov.get('git_dirty') else ''}"),
        ("python / torch / pyiqa", f"{prov.get('python', '–')} / {pk.get('torch', '–')} / {pk.get('pyiqa', '–')}"),
        ("device", device_row(dev)),
        ("bootstrap seed", str(prov.get("bootstrap_seed", "–") if seed is None else seed)),
    ]
    for system, seeds in res.runs.items():
        status = "/".join(sorted({str(t.get("status") or "missing") for t in seeds.values()}))
        labels = [k for k in seeds if k]
        seed_text = f"seed{'s' if len(labels) > 1 else ''} {', '.join(labels) or '–'}"
        rows.append((f"run {system}", f"status {status}, {seed_text}, encoders {_encoders(seeds)}"))
    for system, t in res.inference.items():
        detail = f"{t['device']} ({t['machine']}), torch {t.get('torch')}, {t.get('torch_threads')} threads"
        rows.append((f"timing {system}", detail))
    return rows


def device_row(dev: dict) -> str:
    """The machine of provenance.json's ``device``: CPU model, cores and threads, the GPU when one was used."""
    if not dev:
        return "–"
    cpu = dev.get("cpu_model") or dev.get("processor") or "CPU model not recorded"
    parts = [f"CPU {cpu}" + (f", {dev['cpu_count']} cores" if dev.get("cpu_count") else "")
             + (f", {dev['torch_threads']} torch threads" if dev.get("torch_threads") else "")]
    parts.append(f"GPU {dev['cuda_device']} (CUDA {dev.get('cuda_version')})" if dev.get("cuda_device") else "no GPU")
    parts.append(str(dev["platform"])) if dev.get("platform") else None
    return "; ".join(parts)


def fidelity_table(params: dict | None, measured: dict | None = None) -> Table:
    """The fidelity ledger: each switch of methods/fidelity.py, its value in this run, the upstream code's
    value, what the paper says, and the effect where it was measured (``measured``: the record of
    perf/bench_fidelity.py, perf/results/fidelity.json)."""
    from methods.fidelity import LEDGER, RECONSTRUCTIONS, Fidelity

    values = Fidelity.coerce((params or {}).get("fidelity") or None).asdict()
    effects = (measured or {}).get("switches") or {}
    table = Table(["switch", "this run", "upstream code", "alternative", "paper's text", "what it changes",
                   "measured effect"], [])
    for e in LEDGER:
        value = values.get(e.name, e.upstream)
        effect = (effects.get(e.name) or {}).get("effect") or e.measured_effect or "not measured"
        table.rows.append([e.name, value + ("" if value == e.upstream else " (differs from upstream)"), e.upstream,
                           e.alternative, e.paper, e.description, effect])
    for r in RECONSTRUCTIONS:  # no switch: upstream cannot run there, or the difference is small (measured or argued)
        effect = (effects.get(r.name) or {}).get("effect") or r.effect
        table.rows.append([r.name, r.here, r.upstream, "– (no switch)", "–", "reconstruction", effect])
    table.notes.append("Switches live in params.yaml (fidelity:); docs/fidelity.md explains each.")
    if effects:
        table.notes.append("Measured effects: perf/bench_fidelity.py on the embedded pipeline, "
                           f"{provenance_line(measured)} (another run: compare its commit with this report's).")
    return table


def protocol_table(res: Results) -> Table:
    table = Table(["metric", "direction", "protocol", "colour", "data range", "resolution", "implementation"], [])
    for name in res.metrics():
        info = res.metric_info.get(name, {})
        det = info.get("protocol_details") or {}
        direction = {True: "lower better ↓", False: "higher better ↑"}.get(info.get("lower_better"), "unavailable")
        table.rows.append([name, direction, info.get("protocol") or "–", det.get("colour", "–"),
                           det.get("data_range", "–"), det.get("resolution", "–"), det.get("implementation", "–")])
    return table


def published_table(res: Results, dataset: str) -> Table | None:
    """Published reference rows beside our means for the same metrics (BAID / Backlit300 only)."""
    rows = published_for(dataset)
    if not rows:
        return None
    metrics = [m for m in ("psnr", "ssim", "lpips", "musiq") if any(m in r[2] for r in rows)]
    table = Table(["source", "method", *metrics], [])
    for source, method, values in rows:
        table.rows.append([source, method, *(fmt(values.get(m)) for m in metrics)])
    agg = res.aggregates[res.aggregates["dataset"] == dataset]
    for system in res.systems(dataset):
        means = {r.metric: r.mean for r in agg[agg["system"] == system].itertuples()}
        table.rows.append(["this benchmark", system, *(fmt(means.get(m)) for m in metrics)])
    table.notes.append("Published rows are third-party re-evaluations (methods-spec 6.2), not the authors' tables.")
    return table


def shown_pair(a: str, b: str, with_trained: bool) -> bool:
    """Pairs the report shows (tables/paired.csv has them all): without trained systems every pair but
    the input; else trained vs trained and trained vs the released model of its method and regime."""
    ia, ib = System.parse(a), System.parse(b)
    sources = {ia.source, ib.source}
    if "input" in sources:
        return False
    if not with_trained or sources == {"trained"}:
        return True
    return sources == {"trained", "released"} and (ia.method, ia.regime) == (ib.method, ib.regime)


def _signed(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:+.2f}"


def paired_table(res: Results, dataset: str) -> Table:
    table = Table(["metric", "family", "a", "b", "n images (scenes)", "wins a", "wins b", "ties", "mean a − b [95% CI]",
                   "effect r [95% CI]", "t-test p", "p Holm"], [], source="tables/paired.csv",
                  notes=[(f"{TEST} (two-sided); p Holm: Holm-Bonferroni within the family of the metric: primary "
                          "(pairs of healthy systems: the tests behind best) or secondary (pairs with the input or a "
                          "flagged system; the input's pairs are in tables/paired.csv only); effect r: matched-pairs "
                          "rank-biserial correlation of the per-scene differences, positive when a is better; "
                          "intervals resample whole scenes")])
    with_trained = any(System.parse(s).source == "trained" for s in res.systems(dataset))
    for r in res.paired[res.paired["dataset"] == dataset].itertuples():
        if not shown_pair(r.system_a, r.system_b, with_trained):
            continue
        u = unit(r.metric, res.metric_info.get(r.metric))
        diff = f"{fmt(r.mean_diff)}{' dB' if u == 'dB' else ''} [{fmt(r.diff_low, r.mean_diff)}, " \
               f"{fmt(r.diff_high, r.mean_diff)}]"
        effect = "–" if math.isnan(r.effect) else f"{_signed(r.effect)} [{_signed(r.effect_low)}, {_signed(r.effect_high)}]"
        table.rows.append([r.metric, r.family, r.system_a, r.system_b, f"{r.n} ({r.n_scenes})", str(r.wins_a),
                           str(r.wins_b), str(r.ties), diff, effect, fmt_p(r.p_value), fmt_p(r.p_holm)])
    return table


def build_report(results: str | Path = "results", params: dict | None = None, *, n_boot: int | None = None,
                 seed: int | None = None, n_images: int | None = MAX_GRID_IMAGES,
                 perf_dir: str | Path = DEFAULT_DIR) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``figures/*.png`` and the tables under ``results``
    (grids of the first ``n_images`` test images of each dataset, those the systems disagree on most first)."""
    root = Path(results)
    params = params or {}
    n_boot = n_boot or int(params.get("evaluate", {}).get("bootstrap", 1000))
    if seed is None:
        seed = bootstrap_seed(params)
    res = load_results(root, n_boot=n_boot, seed=seed, perf_dir=perf_dir, profile=params.get("profile"))
    write_tables(res)
    figures = root / "figures"
    metrics = res.metrics()
    scored = [m for m in metrics if m in res.metric_info]
    runs = training_runs(root)
    sections = [_section(res, dataset, metrics, scored, runs, n_images) for dataset in res.datasets]
    flagged = {s for s in res.systems() if plots.flagged(res, s)}
    context = {
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "verdict": verdict(res), "systems": systems_table(res),
        "setup": setup_rows(res, params, seed), "random_encoders": random_encoders(runs), "protocols": protocol_table(res),
        "fidelity": fidelity_table(params, res.perf.get("fidelity")),
        "sections": sections, "training": training_table(runs, root), "ratios": ratio_table(runs, root),
        "timing": inference_table(root), "loss_png": plots.loss_curves(runs, figures / "training_loss.png", flagged),
        "speed_png": plots.inference_speed(res, figures / "inference_speed.png", inference_method(root)),
        "pipeline": _pipeline(root),
        "inference_note": inference_method(root), "training_note": training_method(runs),
        "results_name": root.as_posix(), "perf_name": Path(perf_dir).as_posix(),
        "other_runs": other_runs(res.perf, root, perf_dir), "skipped": res.skipped, "unavailable": res.unavailable,
        "md_grid_images": MD_GRID_IMAGES, "has_provenance": (root / "provenance.json").is_file(),
        "b64": _b64_file, "rel": lambda p: p.relative_to(root).as_posix() if p else None,
    }
    link_tables(context, root)
    return _render(context, root)


def _pipeline(root: Path) -> dict[str, Any] | None:
    """The Gantt chart of the last ``bench repro`` run (``timing/pipeline.json``), captioned with which run it is."""
    from benchmark.engine.timeline import read_timeline

    timeline = read_timeline(root)
    png = plots.pipeline_gantt(timeline, root / "figures" / "pipeline_timeline.png")
    if png is None:
        return None
    stages = timeline["stages"]
    retried = sum(len(s.get("attempts", [])) > 1 for s in stages)
    failed = sum(s.get("status") == "failed" for s in stages)
    which = ("this run; the report stage is not in its own chart" if not timeline.get("finished") else
             f"an earlier run, finished {timeline['finished'][:16]} UTC; stages run since by `dvc repro` are not in it")
    return {"png": png, "caption": f"`bench repro` on {timeline['workers']} {timeline['scheduler']} worker(s), "
                                   f"started {timeline['started'][:16]} UTC: {len(stages)} stages ran, {retried} "
                                   f"retried after their worker died, {failed} failed ({which}). "
                                   "Source: timing/pipeline.json."}


def _section(res: Results, dataset: str, metrics: list[str], scored: list[str], runs: dict[str, dict],
             n_images: int | None) -> dict[str, Any]:
    """The report section of one dataset: its tables, figures and image grids."""
    figures = res.root / "figures"
    rows = grids.build_grids(res, dataset, res.root, n_images=n_images)
    headline = plots.headline_metrics(res, dataset)
    return {
        "name": dataset, "table": metric_table(res, dataset, metrics), "published": published_table(res, dataset),
        "paired": paired_table(res, dataset), "decisions": decision_table(res, dataset),
        "bars": plots.metric_bars(res, dataset, scored, figures / f"metrics_{dataset}.png"),
        "quality_cost": plots.quality_vs_cost(res, dataset, headline, res.inference, runs,
                                              figures / f"quality_vs_cost_{dataset}.png",
                                              " ".join(filter(None, [inference_method(res.root),
                                                                     training_method(runs)]))),
        "per_image": plots.per_image_lines(res, dataset, headline, figures / f"per_image_{dataset}.png"),
        "grid_rows": rows, "grid_png": grids.grid_figure(rows[:MD_GRID_IMAGES], figures / f"grid_{dataset}.png"),
        "n_images": res.n_images(dataset), "n_scenes": res.n_scenes(dataset),
    }


def _render(context: dict[str, Any], root: Path) -> dict[str, Path]:
    """Render ``report.md`` and ``report.html`` under ``root`` from ``context``."""
    env = Environment(loader=PackageLoader("benchmark.report", "templates"), autoescape=select_autoescape(["html", "html.j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    out = {"md": root / "report.md", "html": root / "report.html"}
    write_text(out["md"], env.get_template("report.md.j2").render(**context))
    write_text(out["html"], env.get_template("report.html.j2").render(**context))
    return out
