"""What a Dask worker does for one stage: run its ``dvc.yaml`` command, exactly as ``dvc repro`` would, into a log.

Imported on the workers: no DVC, no torch. A stage's processes die with the worker that started them
(``stage_guard.py``), so a worker killed mid-stage leaves no orphan writing into the retried stage's outputs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EVENTS = "bench-repro"  # the Dask event topic: one message per attempt at a stage
_running: dict[str, subprocess.Popen] = {}  # stage -> its process, on this worker
_lock = threading.Lock()


@dataclass(frozen=True)
class StageCommand:
    """One stage's work, prepared by the client: the argv of each of its commands (DVC's shell invocation),
    where to run it, the environment DVC adds, and the outputs DVC removes before a run."""

    stage: str
    argvs: list[list[str]]
    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)
    restore_env: dict[str, str | None] = field(default_factory=dict)  # keys the Nanny changed: the client's values
    remove: list[str] = field(default_factory=list)


_GUARD = Path(__file__).with_name("stage_guard.py")


def _guarded(argv: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, str(_GUARD), str(os.getpid()), *argv]


def _environment(cmd: StageCommand, gpu: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in cmd.restore_env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env.update(cmd.env)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def gpu_of_worker(name: str, resources: dict, visible: list[str]) -> str | None:
    """A worker of a multi-GPU Slurm job (``dask worker --nworkers K``: names end ``-<k>``) takes the k-th of the
    job's ``visible`` GPUs; other workers keep the ``CUDA_VISIBLE_DEVICES`` they were started with (None)."""
    if "GPU" not in resources or len(visible) < 2:
        return None
    suffix = name.rsplit("-", 1)[-1]
    return visible[int(suffix) % len(visible)] if suffix.isdigit() else visible[0]


def _remove(paths: list[str]) -> None:
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_stage(cmd: StageCommand) -> dict:
    """Run ``cmd`` on this worker; returns ``{"returncode", "worker_name", "address", "host", "start", "end"}``
    (times in epoch seconds).

    A failing command is a result (returncode != 0), not an exception: Dask retries only a worker's death.
    Every attempt starts like DVC's first one: the stage's non-persistent outputs are removed.
    """
    from distributed import get_worker

    worker = get_worker()
    start = time.time()
    who = {"worker_name": str(worker.name), "address": worker.address, "host": os.uname().nodename}
    worker.log_event(EVENTS, {"stage": cmd.stage, "start": start, **who})
    _remove(cmd.remove)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    env = _environment(cmd, gpu_of_worker(str(worker.name), worker.state.total_resources, visible))
    Path(cmd.log).parent.mkdir(parents=True, exist_ok=True)
    returncode = 0
    with open(cmd.log, "w") as log:
        for argv in cmd.argvs:
            log.write(f"> {argv[-1]}\n")
            log.flush()
            proc = subprocess.Popen(_guarded(argv), cwd=cmd.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            with _lock:
                _running[cmd.stage] = proc
            try:
                returncode = proc.wait()
            finally:
                with _lock:
                    _running.pop(cmd.stage, None)
            if returncode != 0:
                break
    return {"returncode": returncode, "start": start, "end": time.time(), **who}


def terminate_stages() -> list[str]:
    """Stop the stage processes this worker runs (``Client.run`` on an interrupted ``bench repro``): each guard,
    on SIGTERM, kills its command's whole process group."""
    with _lock:
        running = dict(_running)
    for proc in running.values():
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    return sorted(running)
