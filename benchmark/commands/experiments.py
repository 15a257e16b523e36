"""``bench experiments``: gather DVC queue experiments into results/experiments.csv and print them."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--metric", default="/psnr", show_default=True,
              help="Which metrics.json leaves to print (suffix of the key path).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/experiments.csv"),
              show_default=True)
def experiments(metric: str, out: Path) -> None:
    """Collect every experiment of `dvc exp show` (params changed, metrics) into OUT; `bench report` shows it."""
    from benchmark.experiments import gather

    frame = gather(Path("."), out)
    if frame.empty:
        click.echo("no experiments with metrics yet (queue some: dvc exp run --queue -S seeds=[3])")
        return
    shown = frame[frame["key"].str.endswith(metric)]
    wide = shown.pivot_table(index=["experiment", "changed_params"], columns="key", values="value")
    click.echo(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    click.echo(f"\nwrote {out} ({len(frame)} rows from {frame['experiment'].nunique()} experiments)")
