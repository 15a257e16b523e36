"""Helpers of the reliability suite: tiny images, tiny training settings, ``bench`` in-process or as a
subprocess that pauses at a known point to be killed there."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Tiny training: 32 px crops, batch 2, checkpoint every 4 iterations; warm-up 3, rounds of 4.
TINY = {"crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 4, "ce_iters": 3, "warmup_iters": 3,
        "enhancer_iters": 4, "prompt_iters": 3, "checkpoint_every": 4}
FAST_ENCODER = "tiny-clip-random"  # random tiny CLIP: fast; numbers mean nothing, mechanics are real


def write_image(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
    return path


def scene(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth random RGB scene (H x W x 3, values 0-255 as float)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 8, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0].permute(1, 2, 0).numpy() * 255


def run_bench(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``bench ARGS`` in-process through the real entry point; (exit code, stderr). This process has
    torch loaded already, so it keeps its CPU numerics (``bench`` in a new process applies params.yaml's)."""
    import benchmark.params
    from benchmark.cli import main

    monkeypatch.setattr(benchmark.params, "numerics_setting", lambda *_: None)
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def bench_subprocess(args: list[str], cwd: Path, setup: str = "") -> subprocess.Popen:
    """Start the ``bench`` command with ``args`` in its own process, after running the Python ``setup``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    code = f"{setup}\nfrom benchmark.cli import main\nmain()"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def pause_after(target: str, when: str, marker: Path) -> str:
    """Python ``setup`` for :func:`bench_subprocess`: wrap ``target`` (``"module:function"`` or
    ``"module:Class.method"``) so that after the first call for which the expression ``when`` holds
    (``args``: the call's positional arguments) the process writes ``marker`` and sleeps, paused at
    that known point until :func:`kill_at_marker` kills it."""
    module, _, attr = target.partition(":")
    *owners, name = attr.split(".")
    return f"""
import importlib as _il, pathlib as _pl, time as _time
_owner = _il.import_module({module!r})
for _o in {owners!r}:
    _owner = getattr(_owner, _o)
_real = getattr(_owner, {name!r})
def _paused(*args, **kwargs):
    result = _real(*args, **kwargs)
    if {when}:
        _pl.Path({str(marker)!r}).write_text("paused")
        _time.sleep(3600)
    return result
setattr(_owner, {name!r}, _paused)
"""


def kill_at_marker(proc: subprocess.Popen, marker: Path, timeout: float = 300.0) -> None:
    """SIGKILL ``proc`` once it has written ``marker`` (see :func:`pause_after`: it then waits, so the
    kill lands at that point however fast or slow the machine); fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{marker} not written within {timeout} s")
        time.sleep(0.05)
    proc.kill()  # SIGKILL on POSIX
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -9, proc.returncode


def temporaries(folder: Path) -> list[Path]:
    """Leftover temporary files of atomic writes under ``folder``."""
    return sorted(p for p in folder.rglob(".*") if ".tmp" in p.name)
