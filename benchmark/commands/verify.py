"""``bench verify``: rerun the embedded pipeline in a scratch clone and compare it with the committed results."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import click


def _summary_rows(locks: list, metrics: list) -> list[tuple[str, str, str, str]]:
    """One row per stage family (output hashes) and per dataset/system (metrics): what, checked, failed, worst."""
    rows = []
    by_family: dict[str, list] = defaultdict(list)
    for c in locks:
        by_family[c.what.split("@")[0].split(":")[0]].append(c)
    for family, checks in sorted(by_family.items()):
        bad = [c for c in checks if not c.ok]
        rows.append((f"dvc.lock {family}", str(len(checks)), str(len(bad)), bad[0].what if bad else "identical"))
    by_system: dict[str, list] = defaultdict(list)
    for c in metrics:
        by_system["/".join(c.what.split("/")[:2])].append(c)
    for system, checks in sorted(by_system.items()):
        bad = [c for c in checks if not c.ok]
        diffs = [abs(c.rerun - c.committed) for c in checks if isinstance(c.rerun, float)]
        worst = f"max |diff| {max(diffs):.3g}" if diffs else "-"
        rows.append((f"metrics {system}", str(len(checks)), str(len(bad)),
                     f"{bad[0].what}: {bad[0].committed} -> {bad[0].rerun} ({bad[0].tolerance})" if bad else worst))
    return rows


@click.command()
@click.option("--project", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="The project (a git checkout) whose committed HEAD is verified.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the scratch clone goes (default: a new temporary folder).")
@click.option("--keep", is_flag=True, help="Keep the scratch clone even when everything agrees.")
def verify(project: Path, workdir: Path | None, keep: bool) -> None:
    """Clone the committed project, run `dvc repro` there and compare dvc.lock hashes and metrics.

    Exit status 1 when an output hash or a metric is outside its tolerance (see benchmark/verify_reproduction.py).
    """
    from benchmark.verify_reproduction import verify as run_verify

    click.echo(f"verifying {project.resolve()} (HEAD) in a scratch clone: `dvc repro` from nothing ...", err=True)
    try:
        locks, metrics, clone = run_verify(project.resolve(), workdir, keep)
    except (RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    rows = _summary_rows(locks, metrics)
    width = max(len(r[0]) for r in rows)
    click.echo(f"{'what':<{width}}  checked  failed  detail")
    for what, n, bad, detail in rows:
        click.echo(f"{what:<{width}}  {n:>7}  {bad:>6}  {detail}")
    failed = [c for c in locks + metrics if not c.ok]
    if failed:
        click.echo(f"\n{len(failed)} of {len(locks) + len(metrics)} checks outside tolerance; the clone is kept at {clone}")
        raise SystemExit(1)
    click.echo(f"\nall {len(locks) + len(metrics)} checks agree (hashes exact, metrics within tolerance)")
