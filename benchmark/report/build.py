"""Assemble the report from the results folder: tables, figures, grids, provenance, skips."""
from __future__ import annotations

import base64
import datetime as _dt
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.atomic import write_text
from benchmark.evaluate import system_info
from benchmark.report import grids, plots
from benchmark.report.data import Results, load_results, write_tables
from benchmark.report.links import link_tables
from benchmark.report.performance import DEFAULT_DIR, inference_table, other_runs, ratio_table, training_table
from benchmark.report.published import published_for
from benchmark.report.tables import Table, fmt, metric_table
from benchmark.timing import training_runs

MAX_GRID_IMAGES = 40  # per dataset in the HTML grids (every test image of the embedded and SICE sets)
MD_GRID_IMAGES = 3  # in the Markdown report's grid PNG


def _b64_file(path: Path | None) -> str | None:
    return base64.b64encode(path.read_bytes()).decode("ascii") if path else None


def random_encoders(runs: dict[str, dict]) -> list[str]:
    """Runs (:func:`~benchmark.timing.training_runs`) trained with a random test encoder
    (``tiny-clip-random``): their numbers mean nothing."""
    return [f"{run}: encoders {t.get('encoders')}" for run, t in runs.items() if t.get("random_encoder")]


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
        ("device", ", ".join(f"{k}={v}" for k, v in dev.items()) or "–"),
        ("bootstrap seed", str(prov.get("seed", "–") if seed is None else seed)),
    ]
    for run, t in res.training.items():
        enc = t.get("encoders")
        rows.append((f"run {run}", f"status {t['status']}, seed {t.get('seed', '–')}, encoders {enc or '–'}"))
    for system, t in res.inference.items():
        detail = f"{t['device']} ({t['machine']}), torch {t.get('torch')}, {t.get('torch_threads')} threads"
        rows.append((f"timing {system}", detail))
    return rows


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
    ia, ib = system_info(a), system_info(b)
    sources = {ia["source"], ib["source"]}
    if "input" in sources:
        return False
    if not with_trained or sources == {"trained"}:
        return True
    return sources == {"trained", "released"} and (ia["method"], ia["regime"]) == (ib["method"], ib["regime"])


def paired_table(res: Results, dataset: str) -> Table:
    table = Table(["metric", "a", "b", "n", "wins a", "wins b", "ties", "mean a − b", "Wilcoxon p"], [],
                  notes=["the input and the other pairs: tables/paired.csv"])
    with_trained = any(system_info(s)["source"] == "trained" for s in res.systems(dataset))
    for r in res.paired[res.paired["dataset"] == dataset].itertuples():
        if not shown_pair(r.system_a, r.system_b, with_trained):
            continue
        table.rows.append([r.metric, r.system_a, r.system_b, str(r.n), str(r.wins_a), str(r.wins_b), str(r.ties),
                           fmt(r.mean_diff), "–" if r.p_value != r.p_value else f"{r.p_value:.3g}"])
    return table


def build_report(results: str | Path = "results", params: dict | None = None, *, n_boot: int | None = None,
                 seed: int | None = None, n_images: int | None = MAX_GRID_IMAGES,
                 benchmarks_dir: str | Path = DEFAULT_DIR) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``figures/*.png`` and the tables under ``results``
    (grids of the first ``n_images`` test images of each dataset, those the systems disagree on most first)."""
    root = Path(results)
    params = params or {}
    n_boot = n_boot or int(params.get("evaluate", {}).get("bootstrap", 1000))
    seed = int(params.get("seed", 0)) if seed is None else seed
    res = load_results(root, n_boot=n_boot, seed=seed, benchmarks_dir=benchmarks_dir)
    write_tables(res)
    figures = root / "figures"
    metrics = res.metrics()
    scored = [m for m in metrics if m in res.metric_info]
    runs = training_runs(root)
    sections = []
    for dataset in res.datasets:
        rows = grids.build_grids(res, dataset, root, n_images=n_images)
        headline = plots.headline_metrics(res, dataset)
        sections.append({
            "name": dataset, "table": metric_table(res, dataset, metrics), "published": published_table(res, dataset),
            "paired": paired_table(res, dataset),
            "bars": plots.metric_bars(res, dataset, scored, figures / f"metrics_{dataset}.png"),
            "quality_cost": plots.quality_vs_cost(res, dataset, headline, res.inference, runs,
                                                  figures / f"quality_vs_cost_{dataset}.png"),
            "per_image": plots.per_image_lines(res, dataset, headline, figures / f"per_image_{dataset}.png"),
            "grid_rows": rows, "grid_png": grids.grid_figure(rows[:MD_GRID_IMAGES], figures / f"grid_{dataset}.png"),
            "n_images": int(res.scores[res.scores["dataset"] == dataset]["image"].nunique()) if len(res.scores) else 0,
        })
    context = {
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "setup": setup_rows(res, params, seed), "random_encoders": random_encoders(runs), "protocols": protocol_table(res),
        "sections": sections, "training": training_table(runs, root), "ratios": ratio_table(runs, root),
        "timing": inference_table(root), "loss_png": plots.loss_curves(runs, figures / "training_loss.png"),
        "speed_png": plots.inference_speed(res, figures / "inference_speed.png"),
        "other_runs": other_runs(res.benchmarks, root), "skipped": res.skipped, "unavailable": res.unavailable,
        "md_grid_images": MD_GRID_IMAGES, "has_provenance": (root / "provenance.json").is_file(),
        "b64": _b64_file, "rel": lambda p: p.relative_to(root).as_posix() if p else None,
    }
    link_tables(context, root)
    env = Environment(loader=PackageLoader("benchmark.report", "templates"), autoescape=select_autoescape(["html", "html.j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    out = {"md": root / "report.md", "html": root / "report.html"}
    write_text(out["md"], env.get_template("report.md.j2").render(**context))
    write_text(out["html"], env.get_template("report.html.j2").render(**context))
    return out
