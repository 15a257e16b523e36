"""``bench run-stage``: the DVC stages. Each reads params.yaml and calls the same code as the
user-facing command (prepare -> train -> enhance -> evaluate -> time-inference -> report)."""
from __future__ import annotations

import json
from pathlib import Path

import click
from click_didyoumean import DYMGroup

from benchmark.atomic import write_json

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
def train(method: str, regime: str) -> None:
    """Train METHOD on the training dataset in REGIME; a method that cannot run is recorded as skipped."""
    from methods.trainer import train_method

    p = _params()
    data = _dataset_dir(p["data"]["train"]) / "train"
    summary = train_method(
        method,
        backlit_dir=data / "backlit",
        welllit_dir=data / f"welllit-{regime}",
        out_dir=RESULTS / "train" / f"{method}-{regime}",
        encoder=p["encoders"]["guidance"],
        identity_encoder=p["encoders"]["identity"],
        schedule=p["schedule"],
        seed=p["seed"],
        device=p.get("device", "auto"),
        overrides=(p.get("train") or {}).get(method) or {},
        resume=True,
    )
    if summary.get("status") == "skipped":
        click.echo(f"{method}-{regime}: skipped: {summary.get('reason')}")
    else:
        click.echo(f"{method}-{regime}: {summary.get('status')} in {summary.get('wall_s', 0):.0f} s, "
                   f"final loss {summary.get('final_loss', float('nan')):.4g}")


@run_stage.command()
@click.option("--system", required=True, help="<method>-<regime> (trained) or released-<weights name>.")
@click.option("--dataset", required=True)
def enhance(system: str, dataset: str) -> None:
    """Enhance DATASET's test inputs with SYSTEM into results/enhanced/<system>/<dataset>/."""
    from benchmark.enhance import enhance_folder, mark_skipped
    from benchmark.weights import WeightsUnavailable

    p = _params()
    out_dir = RESULTS / "enhanced" / system / dataset
    if system.startswith("released-"):
        weights: str | Path = system.removeprefix("released-")
    else:
        weights = RESULTS / "train" / system
        summary_file = weights / "train_summary.json"
        train = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        if train.get("status") == "skipped":
            mark_skipped(out_dir, train.get("reason") or "training skipped")
            click.echo(f"{system}/{dataset}: skipped: {train.get('reason')}")
            return
    enh = p.get("enhance", {})
    try:
        summary = enhance_folder(weights, _dataset_dir(dataset) / "test" / "input", out_dir,
                                 padding=enh.get("padding", "reflect"), device=p.get("device", "auto"),
                                 max_side=enh.get("max_side") or None, tile=enh.get("tile") or None,
                                 precision=enh.get("precision", "fp32"))
    except WeightsUnavailable as exc:
        mark_skipped(out_dir, str(exc))
        click.echo(f"{system}/{dataset}: skipped: {exc}")
        return
    click.echo(f"{system}/{dataset}: {len(summary['done'])} enhanced, {len(summary['failed'])} failed")


@run_stage.command()
@click.option("--system", required=True, help="as for enhance, or `input` (the unprocessed test inputs).")
@click.option("--dataset", required=True)
def evaluate(system: str, dataset: str) -> None:
    """Score results/enhanced/<system>/<dataset> into results/scores/<system>/<dataset>.csv."""
    from benchmark.evaluate import evaluate_system

    p = _params()
    data = _dataset_dir(dataset)
    evaluate_system(
        system=system,
        dataset=dataset,
        dataset_dir=data,
        enhanced_dir=data / "test" / "input" if system == "input" else RESULTS / "enhanced" / system / dataset,
        out_csv=RESULTS / "scores" / system / f"{dataset}.csv",
        metrics=p["evaluate"]["metrics"],
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
    from benchmark.provenance import collect_provenance
    from benchmark.report import build_report

    p = _params()
    write_json(RESULTS / "provenance.json", collect_provenance(
        seed=p["seed"], weights=sorted(RESULTS.glob("train/*/enhancer.pth")), profile=p.get("profile"), params=p))
    out = build_report(results=RESULTS, params=p)
    click.echo(f"wrote {out['html']} and {out['md']}")
