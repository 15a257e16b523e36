"""Helpers of the reliability suite: tiny images, tiny training settings, ``bench`` in-process or as a
killable subprocess, and a local HTTP server that counts requests and can corrupt responses."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
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
    """Run ``bench ARGS`` in-process through the real entry point; (exit code, stderr)."""
    from benchmark.cli import main

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


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(0.005)
    proc.kill()  # SIGKILL on POSIX
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -9, proc.returncode


def finish(proc: subprocess.Popen, timeout: float = 300.0) -> str:
    """Wait for ``proc`` to exit 0; its output."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def temporaries(folder: Path) -> list[Path]:
    """Leftover temporary files of atomic writes under ``folder``."""
    return sorted(p for p in folder.rglob(".*") if ".tmp" in p.name)
