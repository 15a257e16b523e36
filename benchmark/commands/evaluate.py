"""``bench evaluate``, ``bench compare`` and ``bench time-inference``."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

FORMATS = ("table", "csv", "markdown", "json")
TRAINED_METHODS = ("clip-lit", "latent-prompt", "rave", "rave-shifted")


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


def _save_provenance(results: Path, seed: int) -> None:
    from backlit_core.atomic import write_json
    from backlit_core.provenance import collect_provenance

    write_json(results / "provenance.json", collect_provenance(seed=seed, profile=_params().get("profile")))


@click.command()
@click.option("--dataset", "-d", required=True, help="Dataset name (datasets/data/<name>) or a directory.")
@click.option("--system", "-s", required=True, help="System name: <method>-<regime>, released-<weights>, input, ...")
@click.option("--enhanced", "-e", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of <stem>.png outputs [default: <results>/enhanced/<system>/<dataset>].")
@click.option("--force", is_flag=True, help="Rescore images whose scores are already stored.")
@_metric_options
def evaluate(dataset: str, system: str, enhanced: str | None, force: bool, results: str, limit: int | None,
             device: str, metrics: str | None, metric_weights: str | None) -> None:
    """Score one system's enhanced folder -> <results>/scores/<system>/<dataset>.csv."""
    from benchmark.evaluate import evaluate_system, resolve_test_set

    names = _metric_list(metrics)
    try:
        test = resolve_test_set(dataset)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    root = Path(results)
    out = root / "scores" / system / f"{test.name}.csv"
    result = evaluate_system(system, test.name, enhanced or root / "enhanced" / system / test.name, dataset_dir=dataset
                             if Path(dataset).is_dir() else None, out_csv=out, metrics=names, device=device,
                             metric_weights=metric_weights, limit=limit, force=force)
    _save_provenance(root, 0)
    if result.skipped:
        click.echo(f"{system}/{test.name}: skipped ({result.skipped})")
        return
    click.echo(f"{system}/{test.name}: {result.scores['image'].nunique()} images scored -> {out}")
    means = result.scores.groupby("metric")["value"].mean()
    for name, st in result.metrics.items():
        shown = f"{means[name]:.4f}" if name in means else f"{st['status']}: {st.get('reason', '')}"
        click.echo(f"  {name:18s} {shown}")
    for f in result.failed:
        click.echo(f"  failed {f['image']} {f['metric']}: {f['error']}", err=True)


def _resolve_systems(methods: str, weights: str, results: Path) -> list[tuple[str, str]]:
    """``--methods`` -> [(system, weights name or run dir)]; released names, method names or ``all``."""
    from backlit_core.registry import unknown_name_message
    from benchmark.weights import RELEASED

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if weights == "released":
        names = list(RELEASED) if names == ["all"] else names
        for n in names:
            if n not in RELEASED:
                raise click.BadParameter(unknown_name_message("released weights", n, list(RELEASED)), param_hint="--methods")
        return [(f"released-{n}", n) for n in names]
    runs = sorted(p.name for p in (results / "train").glob("*") if p.is_dir())
    out = []
    for n in names:
        match = runs if n == "all" else [r for r in runs if r == n or r.rsplit("-", 1)[0] == n]
        if not match and n not in TRAINED_METHODS and n != "all":
            raise click.BadParameter(unknown_name_message("method", n, list(TRAINED_METHODS) + runs), param_hint="--methods")
        if not match:
            click.echo(f"note: no training run for {n!r} under {results / 'train'} (run `bench train` or `dvc repro`)", err=True)
        out += [(r, str(results / "train" / r)) for r in match]
    return list(dict.fromkeys(out))


def _enhance_released(name: str, inputs: list[Path], out_dir: Path, device: str) -> str | None:
    """Enhance with a released model (outputs already there are kept); the skip reason, if any."""
    from benchmark.enhance import enhance_folder, mark_skipped
    from benchmark.weights import WeightsUnavailable

    try:
        enhance_folder(name, inputs, out_dir, device=device, progress=True)
    except WeightsUnavailable as exc:
        mark_skipped(out_dir, str(exc))
        return str(exc)
    return None


def _timing(systems: list[tuple[str, str]], results: Path, device: str, size_mp: float, repeats: int,
            force: bool) -> None:
    """Time inference of every system (interleaved), except those with a record for the same settings."""
    from benchmark.timing import time_systems

    def current(system: str) -> bool:
        path = results / "timing" / f"{system}.json"
        if force or not path.is_file():
            return False
        old = json.loads(path.read_text())
        sizes = [s["megapixels"] for s in old.get("sizes", [])]
        return old.get("repeats") == repeats and len(sizes) == 1 and abs(sizes[0] - size_mp) < 0.01 and \
            device in ("auto", old.get("device"))

    todo = {system: w for system, w in systems if not current(system)}
    if todo:
        time_systems(results / "timing", todo, device=device, sizes_mp=[size_mp], repeats=repeats, warmup=1)


@click.command()
@click.option("--methods", "-m", required=True,
              help="Comma-separated: trained method names (clip-lit, latent-prompt, rave, rave-shifted) or run names, "
                   "or released weight names with --weights released; `all` for every one.")
@click.option("--dataset", "-d", "datasets", multiple=True,
              help="Dataset name or directory (repeatable, or comma-separated) [default: params.yaml data.test].")
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

    With --weights released and a dataset directory, each released model enhances the test inputs
    first (images already done are skipped). The unprocessed input is scored as the baseline.
    """
    from backlit_core.image_io import list_images
    from benchmark.evaluate import evaluate_system, resolve_test_set
    from benchmark.report.data import load_results, write_tables
    from benchmark.report.tables import aggregates_frame, aggregates_records, metric_table

    root = Path(results)
    names = _metric_list(metrics)
    systems = _resolve_systems(methods, weights, root)
    wanted = [d.strip() for text in datasets for d in text.split(",") if d.strip()] or \
        list(_params().get("data", {}).get("test", []))
    if not wanted:
        raise click.UsageError("no dataset: pass --dataset NAME_OR_DIR")
    tests = []
    for d in wanted:
        try:
            tests.append((d, resolve_test_set(d)))
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
    opts = {"metrics": names, "device": device, "metric_weights": metric_weights, "force": force}
    skipped: set[str] = set()  # systems whose weights are unavailable or whose training was skipped
    for arg, test in tests:
        inputs = list_images(test.inputs)[:limit] if limit else list_images(test.inputs)
        stems = [p.stem for p in inputs]
        dataset_dir = arg if Path(arg).is_dir() else None
        evaluate_system("input", test.name, test.inputs, dataset_dir=dataset_dir, stems=stems,
                        out_csv=root / "scores" / "input" / f"{test.name}.csv", **opts)
        for system, w in systems:
            out_dir = root / "enhanced" / system / test.name
            if weights == "released":
                reason = _enhance_released(w, inputs, out_dir, device)
                if reason:
                    skipped.add(system)
                    click.echo(f"{system}: skipped ({reason})", err=True)
            result = evaluate_system(system, test.name, out_dir, dataset_dir=dataset_dir, stems=stems,
                                     out_csv=root / "scores" / system / f"{test.name}.csv", **opts)
            if result.skipped and system not in skipped:
                skipped.add(system)
                click.echo(f"{system}: skipped ({result.skipped})", err=True)
    if not no_timing:
        available = [(s, w) for s, w in systems if s not in skipped]
        try:
            _timing(available, root, device, timing_mp, repeats, force)
        except (RuntimeError, FileNotFoundError) as exc:
            click.echo(f"timing skipped ({exc})", err=True)
    _save_provenance(root, seed)
    res = load_results(root, n_boot=bootstrap, seed=seed)
    write_tables(res)
    shown = ["input"] + [s for s, _ in systems]
    records: list[dict] = []
    for _, test in tests:
        table_systems = [s for s in shown if (s, test.name) in res.sidecars]
        if fmt == "json":
            records += aggregates_records(res, test.name, names, table_systems)
            continue
        if fmt == "csv":
            click.echo(aggregates_frame(res, test.name, names, table_systems).to_csv(index=False, float_format="%.6g"))
            continue
        table = metric_table(res, test.name, names, table_systems)
        click.echo(f"\n{test.name} ({res.n_images(test.name)} images from {res.n_scenes(test.name)} scenes)")
        click.echo(table.markdown() if fmt == "markdown" else table.text())
        for r in res.decisions[res.decisions["dataset"] == test.name].itertuples():
            if r.metric in names:
                click.echo(f"{r.metric}: {'best ' + r.best if r.best else r.status}: {r.reason}")
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
    click.echo(f"\nwrote {root / 'scores.csv'}, {root / 'metrics.json'}, {root / 'tables'}/; `bench report` for the full report",
               err=True)


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
        return p.name if p.is_dir() else p.stem if p.is_file() else f"released-{w}"

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
