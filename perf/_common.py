"""Shared helpers of the benchmark scripts: statistics, peak rates, environment, JSON output."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"
if str(ROOT) not in sys.path:  # run as `python perf/<script>.py` without installing
    sys.path.insert(0, str(ROOT))

import torch

from backlit_core.paths import REFERENCE_DIR as REFERENCE


def summary(samples: list[float]) -> dict[str, Any]:
    """:func:`~benchmark.inference_timing.quartiles` of timing samples, their relative spread
    ((p75 - p25) / median) and the samples."""
    from benchmark.inference_timing import quartiles

    q = quartiles(samples)
    return {**q, "rel_iqr": (q["p75"] - q["p25"]) / q["median"] if q["median"] else 0.0,
            "samples": [round(v, 6) for v in samples]}


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call (the callables here return CPU results or synchronise)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def perf_environment() -> dict[str, Any]:
    """What the figures were measured on (:func:`~benchmark.machine.runtime`, no host name: the files are
    committed), including the load (other jobs share this CPU)."""
    from benchmark.machine import cpu_flags, runtime

    flags = cpu_flags()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    env = {
        **runtime(), "cores": os.cpu_count(),
        "python": platform.python_version(), "git_commit": commit or None,
        "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags, "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    return env


class CpuPeak:
    """The machine's measured matrix-multiply rate (GFLOP/s), fp32 and bf16, one sample per call.

    Two GEMM libraries are timed and the faster taken (the stricter denominator): MKL through
    ``torch.mm`` (2048^3) and oneDNN through a 1x1 channels-last convolution (8192 x 1024 x 1024).
    """

    def __init__(self, dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16)) -> None:
        g = torch.Generator().manual_seed(0)
        self.mm = {dt: (torch.randn(2048, 2048, generator=g).to(dt), torch.randn(2048, 2048, generator=g).to(dt))
                   for dt in dtypes}
        x = torch.randn(1, 1024, 64, 128, generator=g).contiguous(memory_format=torch.channels_last)
        w = torch.randn(1024, 1024, 1, 1, generator=g)
        self.conv = {dt: (x.to(dt), w.to(dt)) for dt in dtypes}
        for dt in self.mm:
            self.sample(dt)  # warm-up

    def sample(self, dtype: torch.dtype) -> dict[str, float]:
        a, b = self.mm[dtype]
        mkl = 2 * 2048 ** 3 / timed(lambda: torch.mm(a, b)) / 1e9
        x, w = self.conv[dtype]
        op = torch.ops.mkldnn._convolution_pointwise
        onednn = 2 * 8192 * 1024 * 1024 / timed(lambda: op(x, w, None, [0, 0], [1, 1], [1, 1], 1, "none", [], "")) / 1e9
        return {"mkl_mm": mkl, "onednn_gemm": onednn, "peak": max(mkl, onednn)}


def write_result(name: str, record: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``<out_dir or perf/results>/<name>.json`` (atomically) and return its path."""
    out = (out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    tmp.replace(out)
    return out


def sample_photo(max_side: int | None = None, path: Path | None = None) -> torch.Tensor | None:
    """A real backlit photo (3 x H x W in [0, 1]) from the reference samples, or None if absent."""
    from backlit_core.image_io import load_image
    from benchmark.batch_enhance import downscale

    path = path or REFERENCE / "backlit-samples" / "110_51093502029_o.jpg"
    if not path.is_file():
        return None
    return downscale(load_image(path), max_side)


def enhancer_net(path: Path | None = None):
    """The released RAVE (unpaired) enhancer when the reference checkpoints exist, else seeded random weights."""
    from methods.network import EnhanceNet, load_enhancer

    ckpt = path or REFERENCE / "checkpoints" / "rave" / "rave_unpaired.pth"
    if ckpt.is_file():
        return load_enhancer(ckpt)
    torch.manual_seed(0)
    return EnhanceNet().eval()
