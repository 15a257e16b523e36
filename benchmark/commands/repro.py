"""``bench repro``: ``dvc repro`` with the independent stages in parallel on a Dask cluster."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("targets", nargs=-1)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Dask workers (local: default one per GPU, else cores / params `threads`; "
                   "slurm: default params `cluster.workers`).")
@click.option("--scheduler", default="local", show_default=True, metavar="local|slurm|ADDRESS",
              help="local: worker processes on this machine; slurm: dask-jobqueue Slurm jobs; "
                   "ADDRESS: a running Dask scheduler (tcp://host:port).")
@click.option("--partition", default=None, help="Slurm partition (params `cluster.partition`).")
@click.option("--account", default=None, help="Slurm account (params `cluster.account`).")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None,
              help="GPUs per Slurm job, one worker each (params `cluster.gpus_per_job`).")
@click.option("--cpus-per-job", type=click.IntRange(min=1), default=None, help="params `cluster.cpus_per_job`.")
@click.option("--memory", default=None, help="Memory per Slurm job, e.g. 32GB (params `cluster.memory`).")
@click.option("--walltime", default=None, help="Slurm job time limit, HH:MM:SS (params `cluster.walltime`).")
def repro(targets: tuple[str, ...], workers: int | None, scheduler: str, **slurm_flags: object) -> None:
    """Run the stale stages of dvc.yaml (those `dvc repro TARGETS` would run) in parallel on Dask, and record
    them in dvc.lock as `dvc repro` does. Exits 1 naming each failed stage and its log."""
    from dvc.exceptions import DvcException

    from benchmark.engine.clusters import (
        SlurmSettings,
        connect,
        dashboard,
        default_workers,
        has_gpu_workers,
        nanny_environment_to_undo,
        visible_gpus,
    )
    from benchmark.engine.dvc_stages import LOG_DIR, Pipeline, UnsupportedStageError
    from benchmark.engine.reproduce import Runner
    from benchmark.engine.timeline import PIPELINE_TIMING, Timeline
    from benchmark.params import load_params

    params = load_params()
    try:
        pipeline = Pipeline(".", targets)
    except UnsupportedStageError as exc:
        raise click.UsageError(str(exc)) from None
    except DvcException as exc:  # no DVC repository, an unknown target, a broken dvc.yaml
        raise click.ClickException(f"{exc}{': ' + str(exc.__cause__) if exc.__cause__ else ''}") from None
    slurm = None
    gpus: list[str] = []
    if scheduler == "slurm":
        try:
            slurm = SlurmSettings.from_params(params, workers=workers, **slurm_flags)
        except (TypeError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
        workers = slurm.workers
    elif scheduler == "local":
        gpus = visible_gpus()
        workers = workers or default_workers(params)
    elif "://" not in scheduler:
        raise click.BadParameter(f"{scheduler!r}: expected local, slurm or a scheduler address such as "
                                 "tcp://host:8786", param_hint="--scheduler")
    restore_env = nanny_environment_to_undo()
    client, cluster = connect(scheduler, workers or 0, gpus, slurm, pipeline.root / LOG_DIR / "slurm")
    try:
        click.echo(f"{len(pipeline.order)} stages to check; scheduler {scheduler} ({client.scheduler.address}); "
                   f"dashboard: {dashboard(client)}")
        first = workers if scheduler == "local" else 1  # Slurm jobs may queue: start with the first worker
        click.echo(f"waiting for {first} worker(s) ...")
        client.wait_for_workers(first)
        gpu_workers = bool(gpus) or bool(slurm and slurm.gpus_per_job) or has_gpu_workers(client)
        results = pipeline.root / "results"
        timeline = Timeline(results / PIPELINE_TIMING, scheduler=scheduler if "://" not in scheduler else "address",
                            workers=workers or len(client.scheduler_info()["workers"]))
        runner = Runner(pipeline, client, timeline, gpu_workers, restore_env)
        try:
            outcome = runner.run()
        except KeyboardInterrupt:
            runner.interrupt()
            timeline.close()
            click.echo("interrupted: finished stages are recorded in dvc.lock; `bench repro` continues from them",
                       err=True)
            sys.exit(130)
        timeline.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    ran = outcome.named("done", "restored")
    click.echo(f"{len(ran)} stage(s) ran, {len(outcome.named('unchanged'))} unchanged, "
               f"{len(outcome.failures)} failed, {len(outcome.named('blocked'))} not run; "
               f"timeline: {Path('results') / PIPELINE_TIMING}")
    if not outcome.ok:
        for stage, reason in outcome.failures.items():
            click.echo(f"Error: stage '{stage}' failed: {reason}", err=True)
        sys.exit(1)
