"""``bench run-stage``: the DVC stages. Each reads params.yaml and calls the same code as the
user-facing command (prepare -> train -> enhance -> evaluate -> time-inference -> report)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from click_didyoumean import DYMGroup

if TYPE_CHECKING:
    from benchmark.system import System

RESULTS = Path("results")
DATA = Path("datasets") / "data"  # DVC outs live in the project that runs the pipeline (its cwd)


def _params() -> dict:
    from benchmark.params import load_params

    return load_params()


def _dataset_dir(name: str) -> Path:
    from benchmark.data import dataset_dir

    return dataset_dir(name, root=DATA)


@click.group(cls=DYMGroup)
def run_stage() -> None:
    """Pipeline stages (called by dvc.yaml); settings come from params.yaml."""


@run_stage.command()
@click.option("--dataset", required=True)
def prepare(dataset: str) -> None:
    """Obtain DATASET and lay it out under datasets/data/<name>/."""
    from benchmark.data import prepare as prepare_dataset

    p = _params()
    path = prepare_dataset(dataset, root=DATA, seed=p.get("synthetic", {}).get("seed", 0))
    click.echo(f"{dataset}: ready at {path}")


@run_stage.command()
@click.option("--method", required=True)
@click.option("--regime", required=True, type=click.Choice(["paired", "unpaired"]))
@click.option("--seed", required=True, type=click.IntRange(min=0))
def train(method: str, regime: str, seed: int) -> None:
    """Train METHOD on the training dataset in REGIME with SEED; a method that cannot run is recorded as skipped."""
    from benchmark.system import System
    from benchmark.weights import resolve_weights
    from methods.train_api import train_method

    p = _params()
    system = System.trained(method, regime, seed)
    data = _dataset_dir(p["data"]["train"]) / "train"
    summary = train_method(
        method,
        backlit_dir=data / "backlit",
        welllit_dir=data / f"welllit-{regime}",
        out_dir=system.train_dir(RESULTS),
        encoder=p["encoders"]["guidance"],
        identity_encoder=p["encoders"]["identity"],
        schedule=p["schedule"],
        seed=seed,
        device=p.get("device", "auto"),
        overrides=(p.get("train") or {}).get(method) or {},
        resume=True,
        timing_dir=system.train_timing_dir(RESULTS),
        provenance_file=system.train_provenance_file(RESULTS),
        threads=p.get("threads") or None,
        fidelity=p.get("fidelity") or None,
        find_weights=resolve_weights,
    )
    if summary.get("status") == "skipped":
        click.echo(f"{system.name} seed {seed}: skipped: {summary.get('reason')}")
    else:
        click.echo(f"{system.name} seed {seed}: {summary.get('status')} in {summary.get('wall_s', 0):.0f} s, "
                   f"final loss {summary.get('final_loss', float('nan')):.4g}")


def _system(name: str, seed: int | None) -> System:
    from benchmark.system import System

    try:
        return System.parse(name, seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seed") from None


@run_stage.command()
@click.option("--system", required=True,
              help="<method>-<regime> (trained; with --seed), released-<weights name> or a training-free operator.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def enhance(system: str, seed: int | None, dataset: str) -> None:
    """Enhance DATASET's test inputs with SYSTEM into results/enhanced/<system>[/seed-<k>]/<dataset>/."""
    from benchmark.results_store import ResultsStore
    from benchmark.stages import enhance_settings, enhance_stage

    sys_ = _system(system, seed)
    summary = enhance_stage(sys_, dataset, _dataset_dir(dataset) / "test" / "input", ResultsStore(RESULTS),
                            **enhance_settings(_params()))
    label = f"{sys_.results_sub.as_posix()}/{dataset}"
    if summary.get("skipped"):
        click.echo(f"{label}: skipped: {summary['skipped']}")
    else:
        click.echo(f"{label}: {len(summary['done'])} enhanced, {len(summary['failed'])} failed")


@run_stage.command()
@click.option("--system", required=True, help="as for enhance, or `input` (the unprocessed test inputs).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def evaluate(system: str, seed: int | None, dataset: str) -> None:
    """Score results/enhanced/<system>[/seed-<k>]/<dataset> into results/scores/<system>[/seed-<k>]/<dataset>.csv."""
    from benchmark.results_store import ResultsStore
    from benchmark.stages import evaluate_stage

    evaluate_stage(_system(system, seed), dataset, ResultsStore(RESULTS), dataset_dir=_dataset_dir(dataset),
                   metrics=_params()["evaluate"]["metrics"])


@run_stage.command("time-inference")
def time_inference() -> None:
    """Time every enhancer system of the run (trained runs per seed, released weights) in one interleaved
    sample set at the sizes in params (results/timing/inference.json)."""
    from benchmark.timing import time_run

    doc = time_run(RESULTS, _params())
    for rec in doc["systems"]:
        seed = "" if rec.get("seed") is None else f" seed {rec['seed']}"
        click.echo(f"{rec['system']}{seed}: {rec['ms_per_mp_median']:.1f} ms/MP median "
                   f"[{rec['ms_per_mp_p25']:.1f}, {rec['ms_per_mp_p75']:.1f}] at {rec['reference_megapixels']} MP "
                   f"on {rec['device']}")
    for miss in doc["not_timed"]:
        click.echo(f"{miss['system']}: not timed: {miss['reason']}")


@run_stage.command()
def report() -> None:
    """Write results/provenance.json, report.{md,html}, scores.csv, metrics.json, figures/, tables/."""
    from benchmark.report import build_report
    from benchmark.report.build import bootstrap_seed
    from benchmark.results_store import ResultsStore

    p = _params()
    ResultsStore(RESULTS).write_provenance(seeds=p["seeds"], bootstrap_seed=bootstrap_seed(p),
                                           weights=sorted(RESULTS.glob("train/*/seed-*/enhancer.pth")),
                                           profile=p.get("profile"), params=p)
    out = build_report(results=RESULTS, params=p)
    click.echo(f"wrote {out['html']} and {out['md']}")


@run_stage.command()
def code() -> None:
    """Write results/code/: the content hashes of the code each stage runs (its DVC dependency)."""
    from benchmark.code_deps import write_fingerprints

    written = write_fingerprints(RESULTS / "code")
    click.echo(f"{len(written)} code fingerprints in {RESULTS / 'code'}")
