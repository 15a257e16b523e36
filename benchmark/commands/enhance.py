"""``bench enhance``: run a released or trained enhancer over images."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option("--weights", "-w", required=True, help="Released name (see `bench weights list`), a .pth file, a training run directory, "
              "or a training-free method (gamma, hist-eq, clahe; see `bench list methods`).")
@click.option("--input", "-i", "input_", required=True, type=click.Path(exists=True), help="An image file or a folder of images.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Folder for <stem>.png outputs.")
@click.option("--padding", type=click.Choice(["reflect", "zeros"]), default="reflect", show_default=True,
              help="Padding of the four plain convs: reflect (upstream test scripts) or zeros (upstream training).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--max-side", type=click.IntRange(min=1), default=None, help="Downscale so the longer side is at most N pixels.")
@click.option("--tile", type=click.IntRange(min=64), default=None,
              help="Largest side run in one pass; larger images use exact tiles [default: 384 on CPU, 2048 on GPU].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Compute precision: fp32 is exact; bf16/fp16 are faster (GPU, or CPUs with bf16 units).")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--force", is_flag=True, help="Recompute outputs that already exist.")
@click.option("--fail-on-error", is_flag=True, help="Exit non-zero if any image failed.")
def enhance(weights: str, input_: str, output: str, padding: str, device: str, max_side: int | None, tile: int | None,
            precision: str, bits: str, force: bool, fail_on_error: bool) -> None:
    """Enhance every image in INPUT into OUTPUT/<stem>.png (resumes; a bad image fails alone)."""
    from backlit_core.registry import UnknownNameError
    from benchmark.batch_enhance import enhance_folder
    from benchmark.weights import WeightsUnavailable

    try:
        summary = enhance_folder(weights, input_, output, padding=padding, device=device, max_side=max_side,
                                 tile=tile, precision=precision, bits=int(bits), force=force,
                                 timing_file=Path(output) / "timing.json")
    except (UnknownNameError, WeightsUnavailable, FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    n_fail = len(summary["failed"])
    click.echo(f"{len(summary['done'])} enhanced, {n_fail} failed -> {output} ({summary['timing']['wall_s']:.1f} s on {summary['timing']['device']})")
    for f in summary["failed"]:
        click.echo(f"  failed: {f['error']}", err=True)
    if n_fail and (fail_on_error or not summary["done"]):
        sys.exit(1)
