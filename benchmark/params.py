"""Load ``params.yaml``, the single source of settings, with validation of the numbers."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from backlit_core.numerics import MODES


class ParamsError(ValueError):
    """A settings file is missing or holds an invalid value; the message names the file and key."""


def params_path() -> Path:
    return Path(os.environ.get("BACKLIT_BENCH_PARAMS", "params.yaml"))


def numerics_setting(path: str | Path | None = None) -> str | None:
    """``numerics`` of the params file (``native`` when the key is absent), read before torch loads;
    None when there is no readable params file (the command then runs in the inherited mode)."""
    path = Path(path) if path else params_path()
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # the command reports a broken params file itself, if it reads one
    if not isinstance(params, dict):
        return None
    mode = params.get("numerics") or "native"
    _require(mode in MODES, path, "numerics", f"must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read and validate the params file (default ``./params.yaml`` or ``$BACKLIT_BENCH_PARAMS``)."""
    path = Path(path) if path else params_path()
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the project root or set BACKLIT_BENCH_PARAMS)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    validate_params(params, path)
    return params


def _require(cond: bool, path: Path, key: str, msg: str) -> None:
    if not cond:
        raise ParamsError(f"{path}: {key}: {msg}")


def validate_params(p: dict[str, Any], path: Path = Path("params.yaml")) -> None:
    """Check the keys every stage relies on; numbers must be positive where they count things."""
    for key in ("seeds", "data", "methods", "regimes", "encoders", "schedule"):
        _require(key in p, path, key, "missing" + (" (it replaced `seed`: a list such as [0, 1, 2])" if key == "seeds" else ""))
    seeds = p["seeds"]
    _require(isinstance(seeds, list) and len(seeds) > 0 and len(set(seeds)) == len(seeds)
             and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds),
             path, "seeds", f"must be a non-empty list of distinct non-negative integers, got {seeds!r}")
    threads = p.get("threads", 0)
    _require(isinstance(threads, int) and threads >= 0, path, "threads",
             f"must be 0 (torch's default) or a positive thread count, got {threads!r}")
    _require(p["schedule"] in ("quick", "paper"), path, "schedule", f"must be 'quick' or 'paper', got {p['schedule']!r}")
    _require((p.get("numerics") or "native") in MODES, path, "numerics",
             f"must be one of {', '.join(MODES)}, got {p.get('numerics')!r}")
    for r in p["regimes"]:
        _require(r in ("paired", "unpaired"), path, "regimes", f"unknown regime {r!r} (paired, unpaired)")
    enh = p.get("enhance", {})
    _require(int(enh.get("max_side") or 0) >= 0, path, "enhance.max_side", "must be 0 (keep size) or positive")
    _require(enh.get("precision", "fp32") in ("fp32", "bf16", "fp16"), path, "enhance.precision",
             f"must be fp32, bf16 or fp16, got {enh.get('precision')!r}")
    tile = int(enh.get("tile") or 0)
    _require(tile == 0 or tile >= 64, path, "enhance.tile", "must be 0 (the device's default) or at least 64")
    for method, overrides in (p.get("train") or {}).items():
        for key, value in (overrides or {}).items():
            if key in ("iters", "batch_size", "crop", "checkpoint_every") or key.endswith("_iters"):
                _require(isinstance(value, int) and value > 0, path, f"train.{method}.{key}", f"must be a positive integer, got {value!r}")
            if key.endswith("lr"):
                _require(float(value) > 0, path, f"train.{method}.{key}", f"must be positive, got {value!r}")
