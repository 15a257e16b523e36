"""``bench evaluate``, ``bench compare`` and ``bench time-inference``."""
from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from benchmark.data.folder import LAYOUTS_HELP
from benchmark.results_store import ResultsStore
from benchmark.system import System

if TYPE_CHECKING:
    from benchmark.evaluate import TestSet
    from benchmark.report.data import Results

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
    return click.option("--results", type=click.Path(file_okay=False), default="results", show_default=True,
                        help="Results folder.")(f)


def _params() -> dict:
    from benchmark.params import ParamsError, load_params

    try:
        return load_params()
    except ParamsError:
        return {}


def _metric_list(text: str | None) -> list[str]:
    from backlit_core.registry import UnknownNameError
    from benchmark.metrics import DEFAULT_METRICS, parse_metric_list

    try:
        return parse_metric_list(text or _params().get("evaluate", {}).get("metrics") or list(DEFAULT_METRICS))
    except UnknownNameError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None


def _save_provenance(store: ResultsStore, bootstrap_seed: int | None = None) -> None:
    store.write_provenance(bootstrap_seed=bootstrap_seed, profile=_params().get("profile"))


@click.command(epilog=EPILOG)
@click.option("--dataset", "-d", required=True,
              help="Dataset name (datasets/data/<name>) or a directory (layouts below).")
@click.option("--system", "-s", required=True, help="System name: <method>-<regime>, released-<weights>, input, ...")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Training seed of a trained system.")
@click.option("--enhanced", "-e", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of <stem>.png outputs [default: <results>/enhanced/<system>[/seed-<k>]/<dataset>].")
@click.option("--force", is_flag=True, help="Rescore images whose scores are already stored.")
@_metric_options
def evaluate(dataset: str, system: str, seed: int | None, enhanced: str | None, force: bool, results: str,
             limit: int | None, device: str, metrics: str | None, metric_weights: str | None) -> None:
    """Score one system's enhanced folder -> <results>/scores/<system>[/seed-<k>]/<dataset>.csv."""
    from benchmark.evaluate import resolve_test_set
    from benchmark.stages import evaluate_stage

    names = _metric_list(metrics)
    try:
        test = resolve_test_set(dataset)
        sys_ = System.parse(system, seed)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    store = ResultsStore(Path(results))
    result = evaluate_stage(sys_, test.name, store, dataset_dir=dataset if Path(dataset).is_dir() else None,
                            enhanced_dir=enhanced, metrics=names, device=device, metric_weights=metric_weights,
                            limit=limit, force=force)
    _save_provenance(store)
    label = f"{sys_.results_sub.as_posix()}/{test.name}"
    if result.skipped:
        click.echo(f"{label}: skipped ({result.skipped})")
        return
    ok = [n for n, st in result.metrics.items() if st["status"] == "ok"]
    scored = min((result.scored(n) for n in ok), default=0)
    click.echo(f"{label}: {scored} scored / {result.given} given -> {sys_.scores_csv(store.root, test.name)}")
    means = result.scores.groupby("metric")["value"].mean()
    for name, st in result.metrics.items():
        shown = f"{means[name]:.4f}  ({result.scored(name)} scored / {result.given} given)" if name in means \
            else f"{st['status']}: {st.get('reason', '')}"
        click.echo(f"  {name:18s} {shown}")
    _echo_dropped(label, result.failed)


def _echo_dropped(label: str, failed: list[dict[str, str]], known: dict[str, str] | None = None) -> None:
    """One line per dropped image (the metrics it lost and why), except pair problems already printed
    (``known``: image -> why its ground truth is unusable)."""
    by_image: dict[str, tuple[list[str], str]] = {}
    for f in failed:
        if known and f["image"] in known and ("size mismatch" in f["error"] or "ground truth" in f["error"]):
            continue
        by_image.setdefault(f["image"], ([], f["error"]))[0].append(f["metric"])
    for image, (names, error) in by_image.items():
        click.echo(f"{label}: dropped {image} from {', '.join(names)}: {error}", err=True)


def _resolve_systems(methods: str, weights: str, store: ResultsStore) -> tuple[list[System], list[str]]:
    """``--methods`` -> (systems, method names without a training run): released names or aliases, or method
    names (trained runs, one per seed; training-free operators), run names or ``all`` (every training run)."""
    from backlit_core.registry import UnknownNameError, unknown_name_message
    from benchmark.weights import RELEASED, released
    from methods.registry import METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if weights == "released":
        try:
            return [System.released(released(n).name) for n in (list(RELEASED) if names == ["all"] else names)], []
        except UnknownNameError as exc:
            raise click.BadParameter(str(exc), param_hint="--methods") from None
    runs = sorted(p.name for p in (store.root / "train").glob("*") if p.is_dir())
    out: list[System] = []
    missing: list[str] = []
    for n in names:
        if n in METHODS and METHODS.get(n).kind == "training-free":
            out.append(System.parse(n))
            continue
        match = runs if n == "all" else [r for r in runs if r == n or System.parse(r).method == n]
        if not match and n not in METHODS and n != "all":
            raise click.BadParameter(unknown_name_message("method", n, METHODS.names() + runs), param_hint="--methods")
        if not match:
            missing.append(n)
        out += [s for r in match for s in store.trained_systems(r)]
    return list(dict.fromkeys(out)), missing


def _training_hint(methods: list[str], store: ResultsStore) -> str:
    """One line: how to train ``methods`` (or ``all``) for the comparison, how long the committed run took for
    them, and the released models to compare instead."""
    from benchmark.weights import ALIASES, RELEASED
    from methods.registry import METHODS

    params = _params()
    seeds, regimes = params.get("seeds") or [0], params.get("regimes") or ["unpaired"]
    listed = params.get("methods") or []
    everything = methods == ["all"]
    names = list(listed) if everything else methods
    absent = [m for m in names if m not in listed]
    how = "`dvc repro`" if everything else "`dvc repro --glob " + " ".join(
        f"'train@{m}-{r}-*'" for m in names for r in regimes) + "`" + (
        f" after adding {', '.join(absent)} to params.yaml methods" if absent else "")
    facts = [f"{len(seeds)} seed{'s' * (len(seeds) > 1)}"]
    seconds, cores = _committed_training_s(names, regimes, seeds)
    if seconds:
        on = f" on the {'/'.join(map(str, sorted(cores)))}-core CPU of the committed run" if cores else ""
        facts.append(f"about {max(1, round(seconds / 60))} min of training{on}")
    text_only = [m for m in names if m in METHODS and METHODS.get(m).needs_text]
    guidance = str((params.get("encoders") or {}).get("guidance", ""))
    if text_only and not guidance.startswith("clip:"):
        facts.append(f"{', '.join(text_only)} needs a CLIP text encoder, so the image-only {guidance} skips it")
    which = "" if everything else f" of {', '.join(methods)}"
    line = f"no training runs{which} in {store.root / 'train'}: train with {how} ({'; '.join(facts)})"
    if everything or all(m in RELEASED or m in ALIASES for m in methods):
        line += f", or compare the released models: `bench compare --methods {','.join(methods)} --weights released`"
    return line


def _committed_training_s(methods: list[str], regimes: list[str], seeds: list[int]) -> tuple[float, set[int]]:
    """Seconds the project's committed run (``results/timing/train``) took to train ``methods`` in ``regimes``
    for ``len(seeds)`` seeds (mean of its finished runs per seed), and the CPU core counts it ran on."""
    from backlit_core.atomic import read_json
    from backlit_core.paths import PROJECT_ROOT

    seconds, cores = 0.0, set()
    for m in methods:
        for regime in regimes:
            records = [read_json(System.trained(m, regime, k).train_timing_dir(PROJECT_ROOT / "results")
                                 / "train_timing.json") for k in seeds]
            walls = [r["wall_s"] for r in records if r.get("status") != "skipped" and r.get("wall_s")]
            seconds += sum(walls) / len(walls) * len(seeds) if walls else 0.0
            cores |= {r["machine"]["cpu_count"] for r in records if (r.get("machine") or {}).get("cpu_count")}
    return seconds, cores


def _timing(systems: list[System], store: ResultsStore, device: str, size_mp: float, repeats: int,
            force: bool) -> None:
    """Time inference of every system (interleaved; a trained one by its first seed), except those with a
    record for the same settings."""
    from benchmark.timing import time_systems

    def current(system: str) -> bool:
        path = store.root / "timing" / f"{system}.json"
        if force or not path.is_file():
            return False
        old = json.loads(path.read_text())
        sizes = [s["megapixels"] for s in old.get("sizes", [])]
        return old.get("repeats") == repeats and len(sizes) == 1 and abs(sizes[0] - size_mp) < 0.01 and \
            device in ("auto", old.get("device"))

    todo: dict[str, str | Path | None] = {}
    for s in systems:
        if not current(s.name):
            todo.setdefault(s.name, s.train_dir(store.root) if s.source == "trained" else s.weights)
    if todo:
        time_systems(store.root / "timing", todo, device=device, sizes_mp=[size_mp], repeats=repeats, warmup=1)


def _test_sets(datasets: tuple[str, ...]) -> list[tuple[str, TestSet]]:
    """(argument, test set) of each ``--dataset`` (default: params data.test); the embedded synthetic set is
    prepared first when it is not (offline, seconds)."""
    from benchmark.evaluate import resolve_test_set

    params = _params()
    wanted = [d.strip() for text in datasets for d in text.split(",") if d.strip()] or \
        list(params.get("data", {}).get("test", []))
    if not wanted:
        raise click.UsageError("no dataset: pass --dataset NAME_OR_DIR")
    for name in wanted:
        _prepare_synthetic(name, params)
    try:
        return [(d, resolve_test_set(d)) for d in wanted]
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


def _prepare_synthetic(name: str, params: dict) -> None:
    """Generate dataset ``name`` if it is a synthetic card not yet (or no longer) prepared, as the pipeline's
    prepare stage does."""
    import time

    from benchmark.data import load_card, prepare, status
    from benchmark.data.cards import card_names

    if Path(name).is_dir() or name not in card_names():
        return
    card = load_card(name)
    if card.kind != "synthetic" or status(card).state == "present":
        return
    t0 = time.perf_counter()
    click.echo(f"{name}: not prepared yet; generating it (offline) ...", err=True)
    path = prepare(name, seed=params.get("synthetic", {}).get("seed"))
    click.echo(f"{name}: ready at {path} ({time.perf_counter() - t0:.0f} s)", err=True)


def _run_stages(systems: list[System], tests: list[tuple[str, TestSet]], store: ResultsStore, limit: int | None,
                device: str, options: dict) -> set[System]:
    """Enhance (as the pipeline does; a trained run without weights keeps its stored outputs) and score every
    system and the input on every test set; the systems skipped (weights unavailable, training skipped).
    Every pair that loses its ground truth and every dropped image is printed."""
    from backlit_core.image_io import list_images
    from benchmark.evaluate import pair_problems
    from benchmark.stages import enhance_settings, enhance_stage, evaluate_stage

    settings = enhance_settings(_params(), device)
    skipped: set[System] = set()
    for arg, test in tests:
        inputs = list_images(test.inputs)[:limit] if limit else list_images(test.inputs)
        scope = {"dataset_dir": arg if Path(arg).is_dir() else None, "stems": [p.stem for p in inputs], **options}
        problems = pair_problems(test, scope["stems"])
        for why in problems.values():
            click.echo(f"{test.name}: pair dropped from the full-reference metrics: {why}", err=True)
        _echo_dropped(f"input/{test.name}", evaluate_stage(System.parse("input"), test.name, store, **scope).failed,
                      problems)
        for system in systems:
            reason = None
            if system.source != "trained" or (system.train_dir(store.root) / "enhancer.pth").is_file():
                reason = enhance_stage(system, test.name, inputs, store, **settings).get("skipped")
            result = None if reason else evaluate_stage(system, test.name, store, **scope)
            reason = reason or result.skipped
            if reason and system not in skipped:
                skipped.add(system)
                click.echo(f"{system.results_sub.as_posix()}: skipped ({reason})", err=True)
            if result is not None:
                _echo_dropped(f"{system.results_sub.as_posix()}/{test.name}", result.failed, problems)
    return skipped


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
    from benchmark.report.data import load_results, write_tables

    store = ResultsStore(Path(results))
    names = _metric_list(metrics)
    systems, untrained = _resolve_systems(methods, weights, store)
    tests = _test_sets(datasets)
    if untrained and not systems:
        raise click.ClickException(_training_hint(untrained, store))
    if untrained:
        click.echo(f"note: {_training_hint(untrained, store)}", err=True)
    options = {"metrics": names, "device": device, "metric_weights": metric_weights, "force": force}
    skipped = _run_stages(systems, tests, store, limit, device, options)
    if not no_timing:
        try:
            _timing([s for s in systems if s not in skipped], store, device, timing_mp, repeats, force)
        except (RuntimeError, FileNotFoundError) as exc:
            click.echo(f"timing skipped ({exc})", err=True)
    _save_provenance(store, seed)
    res = load_results(store.root, n_boot=bootstrap, seed=seed)
    write_tables(res)
    _print_tables(res, tests, names, list(dict.fromkeys(["input"] + [s.name for s in systems])), fmt)
    click.echo(f"\nwrote {store.root / 'scores.csv'}, {store.root / 'metrics.json'}, {store.root / 'tables'}/; "
               "`bench report` for the full report", err=True)


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
@click.option("--results", type=click.Path(file_okay=False), default="results", show_default=True)
def time_inference(weights: tuple[str, ...], sizes: tuple[float, ...], repeats: int, warmup: int, device: str,
                   tile: int | None, results: str) -> None:
    """Time enhancer inference in ms per megapixel -> <results>/timing/<system>.json (repeats interleaved)."""
    from benchmark.timing import time_systems

    def system(w: str) -> str:
        p = Path(w)
        return p.name if p.is_dir() else p.stem if p.is_file() else System.released(w).name

    todo = {system(w): w for w in weights} or {"network": None}
    try:
        records = time_systems(Path(results) / "timing", todo, device=device, sizes_mp=sizes, repeats=repeats,
                               warmup=warmup, tile=tile)
    except (RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for rec in records.values():
        for s in rec["sizes"]:
            click.echo(f"{rec['system']}: {s['megapixels']} MP: {s['ms_per_mp_median']:.1f} ms/MP median "
                       f"[{s['ms_per_mp_min']:.1f}, {s['ms_per_mp_max']:.1f}] on {rec['device']} ({rec['machine']})")
        click.echo(f"  {rec['params']:,} parameters, {rec['flops_per_pixel']:,} FLOPs/pixel")
