"""Load ``params.yaml``, the single source of settings, with validation of the numbers, into the typed
settings every stage takes (:class:`RunSettings`, built in :meth:`RunSettings.from_params` only)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
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
    env = p.get("envelope") or {}
    _require(isinstance(env.get("threads", 1), int) and not isinstance(env.get("threads", 1), bool)
             and env.get("threads", 1) >= 1 and env.get("threads", 1) != threads, path, "envelope.threads",
             f"must be a positive thread count other than `threads` ({threads}), got {env.get('threads')!r}")
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


# ----------------------------------------------------------------------------------------- typed settings
@dataclass(frozen=True)
class EnhanceSettings:
    """How a system enhances images (params ``enhance``, ``device``): :func:`~benchmark.batch_enhance.enhance_folder`'s
    keyword arguments."""

    padding: str = "reflect"
    device: str = "auto"
    max_side: int | None = None
    tile: int | None = None
    precision: str = "fp32"

    def options(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainSettings:
    """How every method trains (params ``data.train``, ``encoders``, ``schedule``, ``device``, ``threads``,
    ``fidelity``) and each method's own overrides of the schedule (params ``train.<method>``)."""

    dataset: str | None = None
    guidance_encoder: str | None = None
    identity_encoder: str | None = None
    schedule: str = "quick"
    device: str = "auto"
    threads: int | None = None
    fidelity: dict[str, Any] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def method_overrides(self, method: str) -> dict[str, Any]:
        return self.overrides.get(method) or {}


@dataclass(frozen=True)
class EvaluateSettings:
    """What is scored (params ``evaluate.metrics``; None: the default metrics) and on what; the bootstrap
    resamples of the confidence intervals (``evaluate.bootstrap``) and their seed (params ``seed``, else the
    first training seed)."""

    metrics: tuple[str, ...] | None = None
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    device: str = "cpu"
    metric_weights: str | None = None
    force: bool = False


@dataclass(frozen=True)
class TimingSettings:
    """Inference timing of every enhancer of a run (params ``timing``)."""

    sizes_mp: tuple[float, ...] = (0.25, 1.0)
    repeats: int = 5
    warmup: int = 2


@dataclass(frozen=True)
class EnvelopeSettings:
    """The reproduction envelope (params ``envelope``): whether the trained runs are retrained under perturbed
    numerics, and the perturbation (``threads``: torch's CPU threads of that rerun, another summation order)."""

    enabled: bool = False
    threads: int = 1

    def perturbation(self) -> dict[str, Any]:
        return {"threads": self.threads}


@dataclass(frozen=True)
class RunSettings:
    """Every stage's settings, from one params file (:meth:`from_params` is the only reader of its keys);
    ``params`` is the file as read, recorded as it is in the run's provenance."""

    params: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    seeds: tuple[int, ...] = (0,)
    datasets: tuple[str, ...] = ()
    test_datasets: tuple[str, ...] = ()
    synthetic_seed: int | None = None  # None: the dataset card's own generator seed
    methods: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    device: str = "auto"
    train: TrainSettings = field(default_factory=TrainSettings)
    enhance: EnhanceSettings = field(default_factory=EnhanceSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
    envelope: EnvelopeSettings = field(default_factory=EnvelopeSettings)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> RunSettings:
        data, encoders, enh = p.get("data") or {}, p.get("encoders") or {}, p.get("enhance") or {}
        evaluate, timing = p.get("evaluate") or {}, p.get("timing") or {}
        device = p.get("device", "auto")
        metrics = evaluate.get("metrics")
        return cls(
            params=p, profile=p.get("profile"), seeds=tuple(p.get("seeds") or [p.get("seed", 0)]),
            datasets=tuple(p.get("datasets") or []), test_datasets=tuple(data.get("test") or []),
            synthetic_seed=(p.get("synthetic") or {}).get("seed"), methods=tuple(p.get("methods") or []),
            regimes=tuple(p.get("regimes") or []), released=tuple(p.get("released") or []),
            operators=tuple(p.get("operators") or []), device=device,
            train=TrainSettings(dataset=data.get("train"), guidance_encoder=encoders.get("guidance"),
                                identity_encoder=encoders.get("identity"), schedule=p.get("schedule", "quick"),
                                device=device, threads=p.get("threads") or None, fidelity=p.get("fidelity") or None,
                                overrides={m: o or {} for m, o in (p.get("train") or {}).items()}),
            enhance=EnhanceSettings(padding=enh.get("padding", "reflect"), device=device,
                                    max_side=enh.get("max_side") or None, tile=enh.get("tile") or None,
                                    precision=enh.get("precision", "fp32")),
            evaluate=EvaluateSettings(metrics=tuple(metrics) if metrics else None,
                                      bootstrap=int(evaluate.get("bootstrap", 1000)),
                                      bootstrap_seed=int(p.get("seed", (p.get("seeds") or [0])[0]))),
            timing=TimingSettings(sizes_mp=tuple(float(s) for s in timing.get("sizes_mp", [0.25, 1.0])),
                                  repeats=int(timing.get("repeats", 5)), warmup=int(timing.get("warmup", 2))),
            envelope=EnvelopeSettings(enabled=bool((p.get("envelope") or {}).get("enabled", False)),
                                      threads=int((p.get("envelope") or {}).get("threads", 1))),
        )


def load_settings(path: str | Path | None = None, *, missing_ok: bool = False) -> RunSettings:
    """:class:`RunSettings` of the params file (:func:`load_params`); an invalid file raises :class:`ParamsError`.
    ``missing_ok``: no params file gives the defaults (a user command run outside the project)."""
    path = Path(path) if path else params_path()
    if missing_ok and not path.is_file():
        return RunSettings()
    return RunSettings.from_params(load_params(path))
