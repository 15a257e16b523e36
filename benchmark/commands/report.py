"""``bench report``: results files -> report.md, report.html, figures, tables."""
from __future__ import annotations

import click

from benchmark.results import ROOT as RESULTS


@click.command()
@click.option("--results", type=click.Path(file_okay=False, exists=True), default=str(RESULTS), show_default=True,
              help="Results folder to read (and write the report into).")
@click.option("--perf", type=click.Path(file_okay=False), default="perf/results", show_default=True,
              help="Folder of the perf/ scripts' JSON files shown in the report, if present.")
@click.option("--images", type=click.IntRange(min=0), default=40, show_default=True,
              help="Test images per dataset in the HTML grids (all of them up to this many).")
@click.option("--bootstrap", type=click.IntRange(min=10), default=None,
              help="Bootstrap resamples [default: params.yaml evaluate.bootstrap, else 1000].")
@click.option("--seed", type=int, default=None, help="Bootstrap seed [default: params.yaml seed, else 0].")
def report(results: str, perf: str, images: int, bootstrap: int | None, seed: int | None) -> None:
    """Write <results>/report.md and a self-contained <results>/report.html from the results files alone."""
    from benchmark.params import load_settings
    from benchmark.report import build_report

    params = load_settings(missing_ok=True).params  # an invalid params file is an error, a missing one is not
    out = build_report(results, params, n_boot=bootstrap, seed=seed, n_images=images, perf_dir=perf)
    click.echo(f"wrote {out['md']} and {out['html']}")
