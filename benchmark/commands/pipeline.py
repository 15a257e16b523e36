"""``bench run-stage``: the DVC stages. Each parses its arguments, reads params.yaml into typed settings and
calls its function of :mod:`benchmark.stages` (prepare -> train -> enhance -> evaluate -> time-inference ->
report; envelope; code)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click_didyoumean import DYMGroup

if TYPE_CHECKING:
    from benchmark.system import System


def _system(name: str, seed: int | None) -> System:
    from benchmark.system import System

    try:
        return System.parse(name, seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seed") from None


@click.group(cls=DYMGroup)
def run_stage() -> None:
    """Pipeline stages (called by dvc.yaml); settings come from params.yaml."""


@run_stage.command()
@click.option("--dataset", required=True)
def prepare(dataset: str) -> None:
    """Obtain DATASET and lay it out under datasets/data/<name>/."""
    from benchmark.params import load_settings
    from benchmark.stages import prepare_stage

    path = prepare_stage(dataset, load_settings())
    click.echo(f"{dataset}: ready at {path}")


@run_stage.command()
@click.option("--method", required=True)
@click.option("--regime", required=True, type=click.Choice(["paired", "unpaired"]))
@click.option("--seed", required=True, type=click.IntRange(min=0))
def train(method: str, regime: str, seed: int) -> None:
    """Train METHOD on the training dataset in REGIME with SEED; a method that cannot run is recorded as skipped."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder
    from benchmark.stages import train_stage
    from benchmark.system import System

    system = System.trained(method, regime, seed)
    summary = train_stage(system, load_settings().train, ResultsFolder())
    if summary.get("status") == "skipped":
        click.echo(f"{system.name} seed {seed}: skipped: {summary.get('reason')}")
    else:
        click.echo(f"{system.name} seed {seed}: {summary.get('status')} in {summary.get('wall_s', 0):.0f} s, "
                   f"final loss {summary.get('final_loss', float('nan')):.4g}")


@run_stage.command()
@click.option("--system", required=True,
              help="<method>-<regime> (trained; with --seed), released-<weights name> or a training-free operator.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def enhance(system: str, seed: int | None, dataset: str) -> None:
    """Enhance DATASET's test inputs with SYSTEM into its enhanced folder of DATASET."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder, system_folder
    from benchmark.stages import dataset_path, enhance_stage

    sys_ = _system(system, seed)
    summary = enhance_stage(sys_, dataset, dataset_path(dataset) / "test" / "input", ResultsFolder(),
                            load_settings().enhance)
    label = f"{system_folder(sys_).as_posix()}/{dataset}"
    if summary.get("skipped"):
        click.echo(f"{label}: skipped: {summary['skipped']}")
    else:
        click.echo(f"{label}: {len(summary['done'])} enhanced, {len(summary['failed'])} failed")


@run_stage.command()
@click.option("--system", required=True, help="as for enhance, or `input` (the unprocessed test inputs).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def evaluate(system: str, seed: int | None, dataset: str) -> None:
    """Score SYSTEM's enhanced folder of DATASET into its scores CSV."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder
    from benchmark.stages import dataset_path, evaluate_stage

    evaluate_stage(_system(system, seed), dataset, ResultsFolder(), load_settings().evaluate,
                   dataset_dir=dataset_path(dataset))


@run_stage.command()
@click.option("--method", required=True)
@click.option("--regime", required=True, type=click.Choice(["paired", "unpaired"]))
@click.option("--seed", required=True, type=click.IntRange(min=0))
def envelope(method: str, regime: str, seed: int) -> None:
    """Retrain METHOD in REGIME with SEED under perturbed numerics (params envelope) and score it on the test
    sets: the numerics spread of the reproduction envelope (bench verify)."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder
    from benchmark.stages import envelope_stage
    from benchmark.system import System

    system = System.trained(method, regime, seed)
    summary = envelope_stage(system, load_settings(), ResultsFolder())
    reason = f": {summary['reason']}" if summary.get("reason") else ""
    click.echo(f"{system.name} seed {seed} under {summary['perturbation']}: {summary.get('status')}{reason}")


@run_stage.command("time-inference")
def time_inference() -> None:
    """Time every enhancer system of the run (trained runs per seed, released weights) in one interleaved
    sample set at the sizes in params."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder
    from benchmark.stages import time_inference_stage

    doc = time_inference_stage(ResultsFolder(), load_settings())
    for rec in doc["systems"]:
        seed = "" if rec.get("seed") is None else f" seed {rec['seed']}"
        click.echo(f"{rec['system']}{seed}: {rec['ms_per_mp_median']:.1f} ms/MP median "
                   f"[{rec['ms_per_mp_p25']:.1f}, {rec['ms_per_mp_p75']:.1f}] at {rec['reference_megapixels']} MP "
                   f"on {rec['device']}")
    for miss in doc["not_timed"]:
        click.echo(f"{miss['system']}: not timed: {miss['reason']}")


@run_stage.command()
def report() -> None:
    """Write the run's provenance and report (report.md/html, scores.csv, metrics.json, figures, tables)."""
    from benchmark.params import load_settings
    from benchmark.results import ResultsFolder
    from benchmark.stages import report_stage

    out = report_stage(ResultsFolder(), load_settings())
    click.echo(f"wrote {out['html']} and {out['md']}")


@run_stage.command()
def code() -> None:
    """Write the content hashes of the code each stage runs (its DVC dependency)."""
    from benchmark.results import ResultsFolder
    from benchmark.stages import code_stage

    folder = ResultsFolder()
    written = code_stage(folder)
    click.echo(f"{len(written)} code fingerprints in {folder.code_dir}")
