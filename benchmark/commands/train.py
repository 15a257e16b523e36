"""``bench train`` (one method, one run directory) and ``bench rave-explain``."""
from __future__ import annotations

import sys

import click


def _parse_set(values: tuple[str, ...], option: str = "--set") -> dict:
    """``KEY=VALUE`` pairs; values parsed as YAML scalars (ints, floats, strings)."""
    import yaml

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key.strip()] = yaml.safe_load(value)
    return out


@click.command()
@click.option("--method", "-m", required=True, help="clip-lit | latent-prompt | rave | rave-shifted | zero-dce")
@click.option("--backlit", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of backlit training images.")
@click.option("--welllit", type=click.Path(exists=True, file_okay=False),
              help="Folder of well-lit images (required by the CLIP-guided methods; zero-dce uses none).")
@click.option("--encoder", default="effnet-lite0", show_default=True,
              help="Guidance encoder: effnet-lite0, tiny-clip-random or clip:<arch>:<tag or file>.")
@click.option("--identity-encoder", default=None, help="Encoder of the identity loss (default: --encoder).")
@click.option("--schedule", type=click.Choice(["quick", "paper"]), default="quick", show_default=True)
@click.option("--iters", type=click.IntRange(min=1), default=None, help="Total iteration budget (all phases).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--lr", type=float, default=None, help="Enhancer learning rate.")
@click.option("--guidance-lr", "--prompt-lr", "guidance_lr", type=float, default=None,
              help="Learning rate of the prompts / latent guidance.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Enhancer batch size.")
@click.option("--crop", type=click.IntRange(min=1), default=None, help="Training image side (upstream: 512).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Checkpoint interval (iterations).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any other schedule setting (repeatable).")
@click.option("--fidelity", "fidelity", multiple=True, metavar="SWITCH=VALUE",
              help="A fidelity switch of methods/fidelity.py, e.g. snapshot=last (repeatable; default: upstream's code).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--allow-skip", is_flag=True, help="Exit 0 when the method cannot run here (recorded as skipped); else exit 3.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(method: str, backlit: str, welllit: str | None, encoder: str, identity_encoder: str | None, schedule: str,
          iters: int | None, seed: int, device: str, lr: float | None, guidance_lr: float | None,
          batch_size: int | None, crop: int | None, checkpoint_every: int | None, settings: tuple[str, ...],
          fidelity: tuple[str, ...], out: str, resume: bool, allow_skip: bool, quiet: bool) -> None:
    """Train METHOD; writes checkpoint.pt, enhancer.pth, train_log.csv, train_summary.json, provenance.json."""
    from benchmark.weights import resolve_weights
    from methods.registry import METHODS
    from methods.run_files import TrainingDiverged
    from methods.train_api import train_method

    if welllit is None and METHODS.get(method).kind == "clip-guided":
        raise click.BadParameter(f"{method} needs well-lit images", param_hint="--welllit")
    overrides = _parse_set(settings)
    for key, value in {"lr": lr, "guidance_lr": guidance_lr, "batch_size": batch_size, "crop": crop,
                       "checkpoint_every": checkpoint_every}.items():
        if value is not None:
            overrides[key] = value
    try:
        summary = train_method(method, backlit, welllit, out, encoder=encoder, identity_encoder=identity_encoder,
                               schedule=schedule, iters=iters, seed=seed, device=device, overrides=overrides,
                               resume=resume, progress=not quiet, fidelity=_parse_set(fidelity, "--fidelity"),
                               find_weights=resolve_weights)
    except (ValueError, FileNotFoundError, TrainingDiverged, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    if summary["status"] == "skipped":
        click.echo(f"{method}: skipped: {summary['reason']}", err=True)
        sys.exit(0 if allow_skip else 3)
    click.echo(f"{method}: done, {summary['iterations']['total']} iterations in {summary['wall_s']:.0f} s -> {out}/enhancer.pth")


@click.command("rave-explain")
@click.option("--encoder", required=True, help="An encoder with a text tower (clip:<arch>:<tag> or tiny-clip-random).")
@click.option("--backlit", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--welllit", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--vocabulary", type=click.Choice(["decoded-text", "token-ids"]), default="decoded-text",
              show_default=True, help="How the vocabulary is built (fidelity switch `vocabulary`).")
def rave_explain(encoder: str, backlit: str, welllit: str, top: int, device: str, vocabulary: str) -> None:
    """Print the vocabulary tokens nearest to +r and -r (RAVE's residual vector)."""
    from methods.base import MethodUnavailable
    from methods.encoder_base import EncoderUnavailable
    from methods.rave_explain import explain

    try:
        report = explain(encoder, backlit, welllit, top=top, device=device, vocabulary=vocabulary)
    except (MethodUnavailable, EncoderUnavailable, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if report["is_random"]:
        click.echo(f"NOTE: {encoder} has random weights; the tokens below mean nothing.")
    click.echo(f"tau = {report['tau']:.4f} (shifted: {report['tau_shifted']:.4f}); "
               f"cos(r_shifted, r) = {report['cos_shifted_original']:.4f}")
    for sign in ("+r", "-r"):
        click.echo(f"nearest to {sign}:")
        for token, score in report[sign]:
            click.echo(f"  {score:+.4f}  {token}")
