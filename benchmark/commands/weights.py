"""``bench weights``: list and fetch the released checkpoints."""
from __future__ import annotations

import click
from click_didyoumean import DYMGroup


@click.group(cls=DYMGroup)
def weights() -> None:
    """Released CLIP-LIT / latent-prompt / RAVE enhancers and the Zero-DCE baseline."""


@weights.command("list")
def list_weights() -> None:
    """Show every released model (with the name its paper uses, where it differs), its upstream source and
    whether it is available locally."""
    from benchmark.weights import RELEASED, aliases_of, cached_path, local_weights

    found = local_weights()
    for w in RELEASED.values():
        alias = ", ".join(aliases_of(w.name))
        where = f"local: {found[w.name]}" if w.name in found else \
            f"not local: bench weights download {w.name} (-> {cached_path(w)})"
        click.echo(f"{w.name:24s} {w.method:14s} {w.regime:9s}{' alias: ' + alias if alias else ''}".rstrip())
        click.echo(f"    {w.repo}@{w.commit[:7]}:{w.path}\n    {where}")


@weights.command("download")
@click.argument("names", nargs=-1)
def download_weights(names: tuple[str, ...]) -> None:
    """Fetch NAMES (released names or aliases; default: all) into the cache, verifying sha256."""
    from backlit_core.registry import UnknownNameError
    from benchmark.weights import RELEASED, WeightsUnavailable, resolve_weights

    failures = 0
    for name in names or tuple(RELEASED):
        try:
            click.echo(f"{name}: {resolve_weights(name)}")
        except (UnknownNameError, WeightsUnavailable) as exc:
            failures += 1
            click.echo(str(exc), err=True)
    if failures:
        raise SystemExit(1)
