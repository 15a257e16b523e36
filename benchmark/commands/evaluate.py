"""``bench evaluate``, ``bench compare`` and ``bench time-inference``."""
from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from benchmark.data.folder import LAYOUTS_HELP
from benchmark.results import ROOT as RESULTS
from benchmark.results import ResultsFolder, system_folder
from benchmark.system import System

if TYPE_CHECKING:
    from benchmark.evaluate import TestSet
    from benchmark.params import RunSettings
    from benchmark.report.results_loader import Results

FORMATS = ("table", "csv", "markdown", "json")
EPILOG = "\b\n" + LAYOUTS_HELP  # \b: click keeps the lines as they are
TABLE_WIDTH = 120  # terminal tables wrap to this width (or the terminal's, if narrower); files keep every column


def _width() -> int:
    import shutil

    return min(shutil.get_terminal_size((TABLE_WIDTH, 24)).columns, TABLE_WIDTH)


def _metric_options(f: Callable) -> Callable:
    f = click.option("--metric-weights", type=click.Path(file_okay=False), envvar="BACKLIT_BENCH_METRIC_WEIGHTS",
                     help="Folder of local metric parameter files (niqe_modelparameters.mat, brisque_svm_weights.pth, "
                          "...) [env BACKLIT_BENCH_METRIC_WEIGHTS].")(f)
    f = click.option("--metrics", default=None, help="Comma-separated metric names (default: params.yaml "
                     "evaluate.metrics, else psnr,ssim,lpips,musiq,niqe,brisque,piqe); `all` for every registered one.")(f)
    f = click.option("--device", default="auto", show_default=True, help="Device for metrics and timing.")(f)
    f = click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (sorted).")(f)
    return click.option("--results", type=click.Path(file_okay=False), default=str(RESULTS), show_default=True,
                        help="Results folder.")(f)


def _settings() -> RunSettings:
    """params.yaml's settings (defaults where there is no params file; an invalid one is an error)."""
    from benchmark.params import load_settings

    return load_settings(missing_ok=True)


def _note(text: str) -> None:
    click.echo(text, err=True)


def _metric_list(text: str | None) -> list[str]:
    from backlit_core.registry import UnknownNameError
    from benchmark.metrics import DEFAULT_METRICS, parse_metric_list

    try:
        return parse_metric_list(text or list(_settings().evaluate.metrics or DEFAULT_METRICS))
    except UnknownNameError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None


def _save_provenance(folder: ResultsFolder, bootstrap_seed: int | None = None) -> None:
    folder.write_provenance(bootstrap_seed=bootstrap_seed, profile=_settings().profile)


@click.command(epilog=EPILOG)
@click.option("--dataset", "-d", required=True,
              help="Dataset name (datasets/data/<name>) or a directory (layouts below).")
@click.option("--system", "-s", required=True, help="System name: <method>-<regime>, released-<weights>, input, ...")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--enhanced", "-e", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of <stem>.png outputs [default: the system's enhanced folder of the dataset in <results>].")
@click.option("--force", is_flag=True, help="Rescore images whose scores are already stored.")
@_metric_options
def evaluate(dataset: str, system: str, seed: int | None, enhanced: str | None, force: bool, results: str,
             limit: int | None, device: str, metrics: str | None, metric_weights: str | None) -> None:
    """Score one system's enhanced folder -> its scores CSV in <results>."""
    from dataclasses import replace

    from benchmark.compare import dropped_lines
    from benchmark.evaluate import resolve_test_set
    from benchmark.stages import evaluate_stage

    names = _metric_list(metrics)
    try:
        test = resolve_test_set(dataset)
        sys_ = System.parse(system, seed)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    folder = ResultsFolder(Path(results))
    settings = replace(_settings().evaluate, metrics=tuple(names), device=device, metric_weights=metric_weights,
                       force=force)
    result = evaluate_stage(sys_, test.name, folder, settings, dataset_dir=dataset if Path(dataset).is_dir() else None,
                            enhanced_dir=enhanced, limit=limit)
    _save_provenance(folder)
    label = f"{system_folder(sys_).as_posix()}/{test.name}"
    if result.skipped:
        click.echo(f"{label}: skipped ({result.skipped})")
        return
    ok = [n for n, st in result.metrics.items() if st["status"] == "ok"]
    scored = min((result.scored(n) for n in ok), default=0)
    click.echo(f"{label}: {scored} scored / {result.given} given -> {folder.scores_csv(sys_, test.name)}")
    means = result.scores.groupby("metric")["value"].mean()
    for name, st in result.metrics.items():
        shown = f"{means[name]:.4f}  ({result.scored(name)} scored / {result.given} given)" if name in means \
            else f"{st['status']}: {st.get('reason', '')}"
        click.echo(f"  {name:18s} {shown}")
    for line in dropped_lines(label, result.failed):
        _note(line)


def _test_sets(datasets: tuple[str, ...]) -> list[tuple[str, TestSet]]:
    """(argument, test set) of each ``--dataset`` (default: params data.test); the embedded synthetic set is
    prepared first when it is not (offline, seconds)."""
    from benchmark.compare import prepare_synthetic
    from benchmark.evaluate import resolve_test_set

    settings = _settings()
    wanted = [d.strip() for text in datasets for d in text.split(",") if d.strip()] or list(settings.test_datasets)
    if not wanted:
        raise click.UsageError("no dataset: pass --dataset NAME_OR_DIR")
    for name in wanted:
        prepare_synthetic(name, settings, _note)
    try:
        return [(d, resolve_test_set(d)) for d in wanted]
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


def _print_tables(res: Results, tests: list[tuple[str, TestSet]], names: list[str], shown: list[str], fmt: str) -> None:
    """The quality table of each test set (and its best-system decisions) in ``fmt``."""
    from benchmark.report.tables import aggregates_frame, aggregates_records, metric_table

    records: list[dict] = []
    for _, test in tests:
        table_systems = [s for s in shown if (s, test.name) in res.sidecars]
        if fmt == "json":
            records += aggregates_records(res, test.name, names, table_systems)
        elif fmt == "csv":
            click.echo(aggregates_frame(res, test.name, names, table_systems).to_csv(index=False, float_format="%.6g"))
        else:
            table = metric_table(res, test.name, names, table_systems)
            click.echo(f"\n{test.name} ({res.n_images(test.name)} images from {res.n_scenes(test.name)} scenes)")
            click.echo(table.markdown() if fmt == "markdown" else table.text(_width()))
            for r in res.decisions[res.decisions["dataset"] == test.name].itertuples():
                if r.metric in names:
                    line = f"{r.metric}: {'best ' + r.best if r.best else r.status}: {r.reason}"
                    click.echo(line if fmt == "markdown" else "\n".join(textwrap.wrap(line, _width(),
                                                                                       subsequent_indent="  ")))
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))


@click.command(epilog=EPILOG)
@click.option("--methods", "-m", required=True,
              help="Comma-separated: method names (trained runs of clip-lit, rave, zero-dce, ...; training-free "
                   "gamma, hist-eq, clahe) or run names, or with --weights released the released models by name "
                   "or as the papers name them (clip-lit, rave, latent-prompt; `bench weights list`); `all` for "
                   "every training run or released model.")
@click.option("--dataset", "-d", "datasets", multiple=True,
              help="Dataset name or directory in a layout below (repeatable, or comma-separated) [default: "
                   "params.yaml data.test, prepared when it is the embedded synthetic set].")
@click.option("--weights", type=click.Choice(["trained", "released"]), default="trained", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--timing-mp", type=click.FloatRange(min=0.01), default=0.25, show_default=True,
              help="Image size (megapixels) for inference timing.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Timed inference repeats.")
@click.option("--no-timing", is_flag=True, help="Skip inference timing.")
@click.option("--bootstrap", type=click.IntRange(min=10), default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--force", is_flag=True, help="Rescore and retime even when stored results are current.")
@_metric_options
def compare(methods: str, datasets: tuple[str, ...], weights: str, fmt: str, timing_mp: float, repeats: int,
            no_timing: bool, bootstrap: int, seed: int, force: bool, results: str, limit: int | None, device: str,
            metrics: str | None, metric_weights: str | None) -> None:
    """Compare methods on quality (mean ± 95% CI) and cost; prints a table and writes results files.

    Each system first enhances the test inputs as the pipeline's enhance stage does (images already
    done with the same settings are kept), then is scored; the unprocessed input is scored as the baseline.
    """
    from dataclasses import replace

    from backlit_core.registry import UnknownNameError
    from benchmark.compare import resolve_systems, run_stages, time_compared, training_hint
    from benchmark.report.results_loader import load_results, write_tables

    folder = ResultsFolder(Path(results))
    names = _metric_list(metrics)
    try:
        systems, untrained = resolve_systems(methods, weights, folder)
    except UnknownNameError as exc:
        raise click.BadParameter(str(exc), param_hint="--methods") from None
    tests = _test_sets(datasets)
    settings = _settings()
    if untrained and not systems:
        raise click.ClickException(training_hint(untrained, folder, settings))
    if untrained:
        _note(f"note: {training_hint(untrained, folder, settings)}")
    evaluate = replace(settings.evaluate, metrics=tuple(names), device=device, metric_weights=metric_weights,
                       force=force)
    skipped = run_stages(systems, tests, folder, limit, replace(settings.enhance, device=device), evaluate, _note)
    if not no_timing:
        try:
            time_compared([s for s in systems if s not in skipped], folder, device, timing_mp, repeats, force)
        except (RuntimeError, FileNotFoundError) as exc:
            _note(f"timing skipped ({exc})")
    _save_provenance(folder, seed)
    res = load_results(folder.root, n_boot=bootstrap, seed=seed)
    write_tables(res)
    _print_tables(res, tests, names, list(dict.fromkeys(["input"] + [s.name for s in systems])), fmt)
    _note(f"\nwrote {folder.merged_scores_file}, {folder.metrics_file}, {folder.tables_dir}/; "
          "`bench report` for the full report")


@click.command("time-inference")
@click.option("--weights", "-w", "weights", multiple=True,
              help="Released name, .pth or run directory (repeatable); none: the network with fresh weights.")
@click.option("--size-mp", "sizes", type=float, multiple=True, default=(0.25, 1.0), show_default=True,
              help="Image size in megapixels (repeatable).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--tile", type=click.IntRange(min=64), default=None,
              help="Largest side run in one pass; larger images use exact tiles [default: 384 on CPU, 2048 on GPU].")
@click.option("--results", type=click.Path(file_okay=False), default=str(RESULTS), show_default=True)
def time_inference(weights: tuple[str, ...], sizes: tuple[float, ...], repeats: int, warmup: int, device: str,
                   tile: int | None, results: str) -> None:
    """Time enhancer inference in ms per megapixel -> a timing file per system in <results> (repeats interleaved)."""
    from benchmark.inference_timing import time_systems

    def system(w: str) -> str:
        p = Path(w)
        return p.name if p.is_dir() else p.stem if p.is_file() else System.released(w).name

    todo = {system(w): w for w in weights} or {"network": None}
    try:
        records = time_systems(ResultsFolder(Path(results)), todo, device=device, sizes_mp=sizes, repeats=repeats,
                               warmup=warmup, tile=tile)
    except (RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for rec in records.values():
        for s in rec["sizes"]:
            click.echo(f"{rec['system']}: {s['megapixels']} MP: {s['ms_per_mp_median']:.1f} ms/MP median "
                       f"[{s['ms_per_mp_min']:.1f}, {s['ms_per_mp_max']:.1f}] on {rec['device']} ({rec['machine']})")
        click.echo(f"  {rec['params']:,} parameters, {rec['flops_per_pixel']:,} FLOPs/pixel")
