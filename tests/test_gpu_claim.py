"""One GPU per concurrent job: claims by file lock (backlit_core/gpu_claim.py), no GPU needed."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLAIM = textwrap.dedent("""
    import sys, time
    from backlit_core.gpu_claim import claim_gpu
    print(claim_gpu(int(sys.argv[1])), flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _spawn(count: int, hold_s: float, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(count), str(hold_s)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=Path(__file__).resolve().parents[1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    import os

    monkeypatch.setenv("BACKLIT_BENCH_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def test_concurrent_jobs_get_distinct_gpus_and_free_them_on_exit(env: dict) -> None:
    jobs = [_spawn(3, 120.0, env) for _ in range(3)]
    claimed = sorted(int(j.stdout.readline()) for j in jobs)
    assert claimed == [0, 1, 2]
    for j in jobs:
        j.kill()  # even a killed job frees its GPU
        j.wait(timeout=30)
    after = _spawn(3, 0.0, env)
    assert int(after.stdout.readline()) == 0  # the locks died with their processes
    after.wait(timeout=30)


def test_visible_devices_name_the_lock_files(env: dict, tmp_path: Path) -> None:
    env = dict(env, CUDA_VISIBLE_DEVICES="5,7")
    first, second = _spawn(2, 120.0, env), _spawn(2, 120.0, env)
    assert sorted(int(j.stdout.readline()) for j in (first, second)) == [0, 1]
    assert {p.name for p in tmp_path.glob("gpu*.lock")} == {"gpu5.lock", "gpu7.lock"}
    for j in (first, second):
        j.kill()
        j.wait(timeout=30)


def test_single_gpu_needs_no_claim(env: dict, tmp_path: Path) -> None:
    from backlit_core.gpu_claim import claim_gpu

    assert claim_gpu(1) == 0 and not list(tmp_path.glob("*.lock"))
