"""``bench run-stage``: the DVC stages. Each reads params.yaml and calls the same code as the
user-facing command (prepare -> train -> enhance -> evaluate -> time-inference -> report)."""
from __future__ import annotations

import json
from pathlib import Path

import click
from click_didyoumean import DYMGroup

from backlit_core.atomic import write_json

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
    from methods.training import train_method

    p = _params()
    system = f"{method}-{regime}"
    data = _dataset_dir(p["data"]["train"]) / "train"
    summary = train_method(
        method,
        backlit_dir=data / "backlit",
        welllit_dir=data / f"welllit-{regime}",
        out_dir=RESULTS / "train" / _results_sub(system, seed),
        encoder=p["encoders"]["guidance"],
        identity_encoder=p["encoders"]["identity"],
        schedule=p["schedule"],
        seed=seed,
        device=p.get("device", "auto"),
        overrides=(p.get("train") or {}).get(method) or {},
        resume=True,
        timing_dir=RESULTS / "timing" / "train" / _results_sub(system, seed),
        provenance_file=RESULTS / "provenance" / "train" / system / f"seed-{seed}.json",
        threads=p.get("threads") or None,
        fidelity=p.get("fidelity") or None,
    )
    if summary.get("status") == "skipped":
        click.echo(f"{system} seed {seed}: skipped: {summary.get('reason')}")
    else:
        click.echo(f"{system} seed {seed}: {summary.get('status')} in {summary.get('wall_s', 0):.0f} s, "
                   f"final loss {summary.get('final_loss', float('nan')):.4g}")


def _results_sub(system: str, seed: int | None) -> Path:
    """The results sub-path of a system: ``<system>``, or ``<system>/seed-<k>`` for a trained run."""
    return Path(system) if seed is None else Path(system) / f"seed-{seed}"


@run_stage.command()
@click.option("--system", required=True,
              help="<method>-<regime> (trained; with --seed), released-<weights name> or a training-free operator.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def enhance(system: str, seed: int | None, dataset: str) -> None:
    """Enhance DATASET's test inputs with SYSTEM into results/enhanced/<system>[/seed-<k>]/<dataset>/."""
    from benchmark.enhance import enhance_folder, mark_skipped
    from benchmark.weights import WeightsUnavailable

    p = _params()
    sub = _results_sub(system, seed)
    out_dir = RESULTS / "enhanced" / sub / dataset
    timing_file = RESULTS / "timing" / "enhance" / sub / f"{dataset}.json"
    label = f"{sub}/{dataset}"

    def skip(reason: str) -> None:
        mark_skipped(out_dir, reason)
        write_json(timing_file, {"skipped": reason})  # the stage's outputs exist either way
        click.echo(f"{label}: skipped: {reason}")

    if system.startswith("released-"):
        weights: str | Path = system.removeprefix("released-")
    elif seed is None:  # a training-free operator (gamma, hist-eq, clahe)
        weights = system
    else:
        weights = RESULTS / "train" / sub
        summary_file = weights / "train_summary.json"
        train = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        if train.get("status") == "skipped":
            skip(train.get("reason") or "training skipped")
            return
    enh = p.get("enhance", {})
    try:
        summary = enhance_folder(weights, _dataset_dir(dataset) / "test" / "input", out_dir,
                                 padding=enh.get("padding", "reflect"), device=p.get("device", "auto"),
                                 max_side=enh.get("max_side") or None, tile=enh.get("tile") or None,
                                 precision=enh.get("precision", "fp32"),
                                 timing_file=timing_file)
    except WeightsUnavailable as exc:
        skip(str(exc))
        return
    click.echo(f"{label}: {len(summary['done'])} enhanced, {len(summary['failed'])} failed")


@run_stage.command()
@click.option("--system", required=True, help="as for enhance, or `input` (the unprocessed test inputs).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--dataset", required=True)
def evaluate(system: str, seed: int | None, dataset: str) -> None:
    """Score results/enhanced/<system>[/seed-<k>]/<dataset> into results/scores/<system>[/seed-<k>]/<dataset>.csv."""
    from benchmark.evaluate import evaluate_system

    p = _params()
    sub = _results_sub(system, seed)
    data = _dataset_dir(dataset)
    evaluate_system(
        system=system,
        dataset=dataset,
        dataset_dir=data,
        enhanced_dir=data / "test" / "input" if system == "input" else RESULTS / "enhanced" / sub / dataset,
        out_csv=RESULTS / "scores" / sub / f"{dataset}.csv",
        metrics=p["evaluate"]["metrics"],
        seed=seed,
    )


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
    from backlit_core.provenance import collect_provenance
    from benchmark.report import build_report

    p = _params()
    write_json(RESULTS / "provenance.json", collect_provenance(
        seed=p["seeds"], weights=sorted(RESULTS.glob("train/*/seed-*/enhancer.pth")), profile=p.get("profile"),
        params=p))
    out = build_report(results=RESULTS, params=p)
    click.echo(f"wrote {out['html']} and {out['md']}")


@run_stage.command()
def code() -> None:
    """Write results/code/: the content hashes of the code each stage runs (its DVC dependency)."""
    from benchmark.code_deps import write_fingerprints

    written = write_fingerprints(RESULTS / "code")
    click.echo(f"{len(written)} code fingerprints in {RESULTS / 'code'}")
