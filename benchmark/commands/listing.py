"""``bench list``, ``bench sys-info`` and ``bench profile``: quick looks at what is available."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

KINDS = ("methods", "encoders", "metrics", "datasets", "weights")


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS), required=False)
def list_names(kind: str | None) -> None:
    """List registered methods, encoders, metrics, datasets or released weights."""
    for k in [kind] if kind else KINDS:
        click.echo(f"{k}:")
        for line in _names(k):
            click.echo(f"  {line}")


def _names(kind: str) -> list[str]:
    if kind == "methods":
        from methods.registry import METHODS

        rows = [METHODS.get(n) for n in METHODS.names()]
        return [f"{m.name:14s} {m.kind:17s} text: {'yes' if m.needs_text else 'no ':3s}  {m.source}"
                + (f"; {m().describe()}" if m.kind == "training-free" else "") for m in rows]
    if kind == "encoders":
        from methods.encoders import ENCODERS

        return list(ENCODERS.names()) + ["clip:<arch>:<pretrained tag or file>"]
    if kind == "metrics":
        from benchmark.metrics import METRICS

        return list(METRICS.names())
    if kind == "datasets":
        from benchmark.data import list_cards

        return [c.name for c in list_cards()]
    from benchmark.weights import RELEASED, aliases_of

    return [f"{w.name} ({w.method}, {w.regime})" + "".join(f", alias {a}" for a in aliases_of(w.name))
            for w in RELEASED.values()]


@click.command("sys-info")
def sys_info() -> None:
    """Print versions, device (CPU model; GPU model when present), git state and the released weights found
    locally (with their sha256) as JSON: what every run records."""
    from backlit_core.provenance import collect_provenance
    from benchmark.weights import RELEASED, cache_dir, local_weights

    record = collect_provenance()
    found = local_weights()
    record["weights"] = {name: {"file": str(path), "sha256": RELEASED[name].sha256} for name, path in found.items()} \
        or f"none cached: no released model in {cache_dir()} or a mirror folder (bench weights download)"
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@click.command("profile")
@click.argument("name", required=False)
def profile(name: str | None) -> None:
    """Show the active profile, or switch params.yaml to profiles/NAME.yaml (embedded | paper)."""
    from backlit_core.registry import unknown_name_message
    from benchmark.params import load_params

    profiles = {p.stem: p for p in Path("profiles").glob("*.yaml")}
    if name is None:
        click.echo(f"active: {load_params().get('profile')}; available: {', '.join(sorted(profiles))}")
        return
    if name not in profiles:
        raise click.ClickException(unknown_name_message("profile", name, list(profiles)))
    shutil.copyfile(profiles[name], "params.yaml")
    click.echo(f"params.yaml <- profiles/{name}.yaml; run `dvc repro` (or `dvc status` to see what changes)")
