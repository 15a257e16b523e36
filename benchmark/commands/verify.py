"""``bench verify``: rerun the committed pipeline in a scratch clone and say how closely it reproduces."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from benchmark.verify_reproduction import Check, Verification


def family_rows(checks: list[Check]) -> list[tuple[str, int, int, int, int, str]]:
    """(family, outputs, exact, within, outside, detail) per stage family, metrics per system after them."""
    from benchmark.envelope import EXACT, OUTSIDE, WITHIN

    groups: dict[str, list[Check]] = defaultdict(list)
    for c in checks:
        groups[c.family if c.family != "metric" else f"metrics {c.system}"].append(c)
    rows = []
    for name in sorted(groups, key=lambda n: (n.startswith("metrics "), n)):
        group = groups[name]
        n = {lvl: sum(c.level == lvl for c in group) for lvl in (EXACT, WITHIN, OUTSIDE)}
        worst = next((c for lvl in (OUTSIDE, WITHIN) for c in group if c.level == lvl), None)
        detail = f"{worst.what.split(':')[0]}: {worst.detail}" if worst else "identical"
        rows.append((name, len(group), n[EXACT], n[WITHIN], n[OUTSIDE], detail))
    return rows


def print_table(result: Verification, width: int = 120) -> None:
    rows = family_rows(result.checks)
    name_w = max(len(r[0]) for r in rows)
    click.echo(f"{'':<{name_w}}  {'checks':>6} {'exact':>5} {'within':>6} {'outside':>7}  detail (first not exact)")
    for name, n, ex, wi, out, detail in rows:
        line = f"{name:<{name_w}}  {n:>6} {ex:>5} {wi:>6} {out:>7}  {detail}"
        click.echo(line if len(line) <= width else line[: width - 1] + "…")
    click.echo("")
    keys = ("cpu", "gpu", "threads", "torch", "device", "numerics")
    click.echo(f"{'machine':<10} {'committed run':<40} this rerun")
    for k in keys:
        a, b = result.committed_machine.get(k), result.this_machine.get(k)
        if a is not None or b is not None:
            click.echo(f"{k:<10} {a!s:<40} {b}")


@click.command()
@click.option("--project", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="The project (a git checkout) whose committed HEAD is verified.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the scratch clone goes (default: a new temporary folder).")
@click.option("--keep", is_flag=True, help="Keep the scratch clone even when everything reproduces.")
@click.option("--strict", is_flag=True, help="Demand exact reproduction (same bytes) of every output and metric.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: the whole verification on stdout (for CI).")
def verify(project: Path, workdir: Path | None, keep: bool, strict: bool, fmt: str) -> None:
    """Clone the committed project, run `dvc repro` there from nothing and judge every output and metric:
    exact (same bytes), within the committed envelope (seed and numerics spread, results/envelope.json;
    fixed tolerances for systems without seeds), or outside.

    Exit 0 when nothing is outside (with --strict: when everything is exact); exit 1 lists what is not.
    The committed records under results/ must be one run of the committed code (else exit 1 too).
    """
    from benchmark.envelope import EXACT
    from benchmark.verify_reproduction import level_counts
    from benchmark.verify_reproduction import verify as run_verify

    click.echo(f"verifying {project.resolve()} (HEAD) in a scratch clone: `dvc repro` from nothing ...", err=True)
    try:
        result = run_verify(project.resolve(), workdir, keep)
    except (RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    failed = [c for c in result.checks if c.level != EXACT] if strict else result.outside()
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print_table(result)
    counts = level_counts(result.checks)
    summary = ", ".join(f"{n} {lvl}" for lvl, n in counts.items())
    if result.records:
        click.echo(f"\ncommitted records are not one run of the committed code ({len(result.records)}):", err=True)
        for line in result.records:
            click.echo(f"  {line}", err=True)
    if failed or result.records:
        what = "not exact" if strict else "outside the envelope"
        click.echo(f"\n{len(failed)} of {len(result.checks)} checks {what} ({summary})"
                   + (f"; the clone is kept at {result.clone}" if result.clone else ""), err=True)
        for c in failed[:40]:
            click.echo(f"  {c.level:<15} {c.what}  {c.detail}", err=True)
        raise SystemExit(1)
    click.echo(f"\nall {len(result.checks)} checks reproduce: {summary}" + ("" if strict else
               " (within envelope: the rerun's mean over the committed seeds lies within the committed seed and "
               "numerics spread; rule in results/envelope.json)"), err=True)
