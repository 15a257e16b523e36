"""The ``bench`` command line. Subcommands are imported lazily so ``--help`` stays instant."""
from __future__ import annotations

import importlib

import click
from click_didyoumean import DYMGroup

# command name -> "module:attribute" of its click command; each module owns one stage.
COMMANDS: dict[str, str] = {
    "enhance": "benchmark.commands.enhance:enhance",
    "weights": "benchmark.commands.weights:weights",
    "train": "benchmark.commands.train:train",
    "rave-explain": "benchmark.commands.train:rave_explain",
    "datasets": "benchmark.commands.datasets:datasets",
    "evaluate": "benchmark.commands.evaluate:evaluate",
    "compare": "benchmark.commands.evaluate:compare",
    "time-inference": "benchmark.commands.evaluate:time_inference",
    "report": "benchmark.commands.report:report",
    "run-stage": "benchmark.commands.pipeline:run_stage",
    "repro": "benchmark.commands.repro:repro",
    "list": "benchmark.commands.listing:list_names",
    "sys-info": "benchmark.commands.listing:sys_info",
    "profile": "benchmark.commands.listing:profile",
    "verify": "benchmark.commands.verify:verify",
    "experiments": "benchmark.commands.experiments:experiments",
}

SHORT_HELP: dict[str, str] = {
    "enhance": "Enhance images with a released, trained or training-free enhancer.",
    "weights": "List or download the released checkpoints.",
    "train": "Train one method (clip-lit, latent-prompt, rave, rave-shifted, zero-dce).",
    "rave-explain": "Print vocabulary tokens nearest to +r and -r (RAVE bias analysis).",
    "datasets": "List, prepare, verify and synthesise datasets.",
    "evaluate": "Score enhanced images with pyiqa metrics.",
    "compare": "Compare methods: metric and timing tables and plots.",
    "time-inference": "Time enhancer inference (ms per megapixel).",
    "report": "Write results/report.md and results/report.html.",
    "run-stage": "Run one pipeline stage with settings from params.yaml.",
    "repro": "dvc repro with independent stages in parallel on Dask (local, Slurm, a scheduler).",
    "list": "List methods (with kind and source), encoders, metrics or datasets.",
    "sys-info": "Print versions, device and provenance.",
    "profile": "Show or switch the settings profile (embedded | paper).",
    "verify": "Rerun the pipeline in a scratch clone; compare hashes and metrics with the committed ones.",
    "experiments": "Gather DVC queue experiments (dvc exp show) into results/experiments.csv.",
}


class LazyGroup(DYMGroup):
    """A did-you-mean group whose subcommands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="backlit-bench")
def cli() -> None:
    """backlit-bench: retrain and compare CLIP-LIT, latent-prompt and RAVE on backlit photos."""


def main() -> None:
    """Entry point: known user errors print one line instead of a traceback.

    The CPU numerics of params.yaml (``numerics``, :mod:`backlit_core.numerics`) are chosen first:
    their environment must be set before anything imports torch.
    """
    from backlit_core import numerics
    from backlit_core.registry import UnknownNameError
    from benchmark.params import ParamsError, numerics_setting

    try:
        mode = numerics_setting()
        if mode is not None:
            numerics.apply(mode)
        cli()
    except (ParamsError, UnknownNameError, numerics.NumericsError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
