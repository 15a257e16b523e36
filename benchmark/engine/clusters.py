"""The Dask cluster ``bench repro`` runs on: this machine (``local``), Slurm jobs (``slurm``) or a running scheduler.

Every worker runs one stage at a time (one thread; a stage uses ``params.yaml: threads`` itself). Workers that
own a GPU carry the Dask resource ``GPU=1``, and stages that read the ``device`` param ask for it. A worker
that dies mid-stage is replaced and its stage is retried once (``distributed.scheduler.allowed-failures: 1``).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client
    from distributed.deploy import Cluster

RETRIES_AFTER_WORKER_DEATH = 1


@dataclass
class SlurmSettings:
    """One Slurm job per ``max(gpus_per_job, 1)`` workers (``params.yaml: cluster``; flags override)."""

    workers: int = 4
    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    memory: str = "8GB"
    walltime: str = "04:00:00"
    interface: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any], **flags: Any) -> SlurmSettings:
        known = {f.name for f in fields(cls)}
        given = {**(params.get("cluster") or {}), **{k: v for k, v in flags.items() if v is not None}}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"params.yaml: cluster: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if isinstance(given.get("walltime"), int):  # YAML 1.1 (`dvc exp run -S` rewrites params.yaml) reads 24:00:00
            hours, rest = divmod(given["walltime"], 3600)  # unquoted as sexagesimal seconds
            given["walltime"] = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        return cls(**given)

    @property
    def processes(self) -> int:
        return max(self.gpus_per_job, 1)

    def cluster_options(self, log_dir: Path) -> dict[str, Any]:
        """The ``dask_jobqueue.SLURMCluster`` arguments."""
        return {
            "queue": self.partition, "account": self.account, "walltime": self.walltime, "memory": self.memory,
            "processes": self.processes, "cores": self.processes,  # one thread per worker: one stage at a time
            "job_cpu": self.cpus_per_job, "interface": self.interface, "python": sys.executable,
            "job_name": "bench-repro", "log_directory": str(log_dir), "scheduler_options": {"dashboard_address": ":0"},
            "job_extra_directives": [f"--gres=gpu:{self.gpus_per_job}"] if self.gpus_per_job else [],
            "worker_extra_args": ["--resources", "GPU=1"] if self.gpus_per_job else [],
        }


def nanny_environment_to_undo() -> dict[str, str | None]:
    """This process's values of the variables a Dask Nanny sets for its worker (``OMP_NUM_THREADS=1``, ...): the
    stage commands get them back, so they run in the environment ``dvc repro`` gives them. Call it before a
    local cluster starts (its nannies set them in this process too)."""
    import dask

    keys = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **dask.config.get("distributed.nanny.environ", {})}
    return {key: os.environ.get(key) for key in keys}


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (empty without CUDA; torch is imported
    only where an NVIDIA driver is installed)."""
    if not Path("/proc/driver/nvidia").exists() and shutil.which("nvidia-smi") is None:
        return []
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return listed[:count] if listed else [str(k) for k in range(count)]


def default_workers(params: dict[str, Any]) -> int:
    """One worker per GPU; without GPUs, the cores divided by the torch threads a stage uses."""
    gpus = visible_gpus()
    return len(gpus) or max(1, (os.cpu_count() or 1) // max(1, int(params.get("threads") or 1)))


def local_cluster(workers: int, gpus: list[str]) -> Cluster:
    """``distributed.LocalCluster`` of worker processes; the first ``len(gpus)`` own one GPU each (their own
    ``CUDA_VISIBLE_DEVICES`` and ``GPU=1``), the others none (an empty ``CUDA_VISIBLE_DEVICES``)."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, memory_limit=0,
                           dashboard_address=":0")
    spec = cluster.new_spec
    for k in range(workers):
        options = dict(spec["options"])
        if gpus:
            gpu = gpus[k] if k < len(gpus) else ""
            options["env"] = {**(options.get("env") or {}), "CUDA_VISIBLE_DEVICES": gpu}
            if gpu:
                options["resources"] = {"GPU": 1}
        cluster.worker_spec[f"gpu-{gpus[k]}" if k < len(gpus) else f"cpu-{k}"] = {"cls": spec["cls"],
                                                                                   "options": options}
    cluster.scale(len(cluster.worker_spec))
    return cluster


def slurm_cluster(settings: SlurmSettings, log_dir: Path) -> Cluster:
    """``dask_jobqueue.SLURMCluster`` with ``settings.workers`` workers (``ceil(workers / processes)`` jobs)."""
    from dask_jobqueue import SLURMCluster

    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = SLURMCluster(**settings.cluster_options(log_dir))
    cluster.scale(jobs=math.ceil(settings.workers / settings.processes))
    return cluster


def connect(scheduler: str, workers: int, gpus: list[str], slurm: SlurmSettings | None,
            log_dir: Path) -> tuple[Client, Cluster | None]:
    """A client on the cluster ``scheduler`` names, and the cluster when this process owns it (else None)."""
    import dask
    from distributed import Client

    dask.config.set({"distributed.scheduler.allowed-failures": RETRIES_AFTER_WORKER_DEATH})
    if scheduler == "local":
        cluster = local_cluster(workers, gpus)
    elif scheduler == "slurm":
        assert slurm is not None
        cluster = slurm_cluster(slurm, log_dir)
    else:
        return Client(scheduler), None
    return Client(cluster), cluster


def has_gpu_workers(client: Client) -> bool:
    return any("GPU" in (w.get("resources") or {}) for w in client.scheduler_info()["workers"].values())


def dashboard(client: Client) -> str:
    """The dashboard's address, or why there is none (Dask serves it only where bokeh is installed)."""
    has_bokeh = lambda: __import__("importlib.util").util.find_spec("bokeh") is not None
    if "dashboard" in (client.scheduler_info().get("services") or {}) and client.run_on_scheduler(has_bokeh):
        return client.dashboard_link
    return "unavailable (bokeh is not installed where the scheduler runs)"
