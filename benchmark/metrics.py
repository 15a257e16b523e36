"""Image-quality metrics over pyiqa, each under a named protocol.

A metric name is a pyiqa name (``psnr``, ``niqe``) or ``<name>@<protocol>`` for our own variants
(``psnr@rave-paper``). SSIM has two protocols: ``ssim`` on the luma channel (as upstream's metric
script, grayscale) and ``ssim@rgb`` on RGB (methods-spec 6.1's recommendation; the fidelity switch
``ssim_channel`` picks the headline one). The direction (``lower_better``), mode and score range are read from the
created pyiqa metric, never hard-coded. A metric whose weights cannot be had offline loads as
:class:`Unavailable` with the reason; creation is probed once per process and fails fast.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backlit_core.device import resolve_device
from backlit_core.paths import REFERENCE_DIR
from backlit_core.registry import Registry, UnknownNameError, unknown_name_message

if TYPE_CHECKING:
    import torch

DEFAULT_METRICS = ("psnr", "ssim", "lpips", "musiq", "niqe", "brisque", "piqe")
WEIGHTS_ENV = "BACKLIT_BENCH_METRIC_WEIGHTS"
SHARED_METRIC_WEIGHTS = REFERENCE_DIR / "metric-weights"
DOWNLOAD_TIMEOUT_S = 10.0
RAVE_LPIPS_SHORT_SIDE = 1024
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MetricInputError(ValueError):
    """Inputs a metric cannot score (size mismatch, out-of-range values); names the files."""


@dataclass(frozen=True)
class Protocol:
    """How images are prepared for a metric: recorded beside every score."""

    name: str
    colour: str
    data_range: str
    resolution: str
    implementation: str

    def as_dict(self) -> dict[str, str]:
        return {"colour": self.colour, "data_range": self.data_range, "resolution": self.resolution,
                "implementation": self.implementation}


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric: the pyiqa metric behind it, its protocol and the files it needs.

    ``cache_files`` are paths under torch's hub dir that must exist before creation offline;
    ``local_file`` is looked up in the metric-weights folder and passed as ``pretrained_model_path``.
    """

    name: str
    pyiqa_name: str
    protocol: Protocol
    cache_files: tuple[str, ...] = ()
    local_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    scorer: str = "pyiqa"  # pyiqa | rave-psnr | rave-ssim | rave-lpips


def _pyiqa_protocol(colour: str, resolution: str = "native", impl: str = "") -> Protocol:
    return Protocol("pyiqa", colour, "float [0, 1] from 8/16-bit files", resolution, impl or "pyiqa defaults")


RAVE_GRAY = "gray: cv2 BGR read then RGB2GRAY (R and B weights swapped)"
RAVE_PROTOCOL_PSNR = Protocol("rave-paper", RAVE_GRAY, "uint8 [0, 255]", "native", "cv2.PSNR on uint8 (RAVE compute_metrics.py)")
RAVE_PROTOCOL_SSIM = Protocol("rave-paper", RAVE_GRAY, "uint8; data_range = max - min of the enhanced image", "native",
                              "skimage structural_similarity, default window (RAVE compute_metrics.py)")
RAVE_PROTOCOL_LPIPS = Protocol("rave-paper", "RGB, ImageNet mean/std normalised (LPIPS expects [-1, 1])", "float",
                               f"shorter side resized to {RAVE_LPIPS_SHORT_SIDE} (bilinear)",
                               "LPIPS v0.1 AlexNet (RAVE compute_metrics.py)")
_LPIPS_FILES = ("pyiqa/LPIPS_v0.1_alex-df73285e.pth", "checkpoints/alexnet-owt-7be5be79.pth")

METRICS: Registry[MetricSpec] = Registry("metric")
for _spec in [
    MetricSpec("psnr", "psnr", _pyiqa_protocol("RGB", impl="pyiqa psnr, mean over RGB")),
    MetricSpec("ssim", "ssim", _pyiqa_protocol("Y (BT.601 luma)", impl="pyiqa ssim, Gaussian window, no downsampling")),
    MetricSpec("ssim@rgb", "ssimc", Protocol("rgb", "RGB (SSIM of each channel, averaged)", "float [0, 1] from 8/16-bit files",
                                             "native", "pyiqa ssimc, Gaussian window, no downsampling")),
    MetricSpec("lpips", "lpips", _pyiqa_protocol("RGB scaled to [-1, 1]", impl="pyiqa lpips v0.1 AlexNet"),
               _LPIPS_FILES, "LPIPS_v0.1_alex-df73285e.pth"),
    MetricSpec("musiq", "musiq", _pyiqa_protocol("RGB", "native (multi-scale 224/384)", "pyiqa musiq (KonIQ-10k)"),
               ("pyiqa/musiq_koniq_ckpt-e95806b9.pth",), "musiq_koniq_ckpt-e95806b9.pth"),
    MetricSpec("niqe", "niqe", _pyiqa_protocol("Y (BT.601 luma)", impl="pyiqa niqe"),
               ("pyiqa/niqe_modelparameters.mat",), "niqe_modelparameters.mat"),
    MetricSpec("brisque", "brisque", _pyiqa_protocol("Y (BT.601 luma)", impl="pyiqa brisque (original LIVE SVM)"),
               ("pyiqa/brisque_svm_weights.pth",), "brisque_svm_weights.pth"),
    MetricSpec("piqe", "piqe", _pyiqa_protocol("Y (BT.601 luma)", impl="pyiqa piqe")),
    MetricSpec("psnr@rave-paper", "psnr", RAVE_PROTOCOL_PSNR, scorer="rave-psnr"),
    MetricSpec("ssim@rave-paper", "ssim", RAVE_PROTOCOL_SSIM, scorer="rave-ssim"),
    MetricSpec("lpips@rave-paper", "lpips", RAVE_PROTOCOL_LPIPS, _LPIPS_FILES, "LPIPS_v0.1_alex-df73285e.pth",
               scorer="rave-lpips"),
]:
    METRICS.register(_spec.name, _spec)


def metric_names() -> list[str]:
    return sorted(METRICS.names(), key=metric_order)


def metric_order(name: str) -> tuple[int, int, str]:
    """Display order: the default metrics in their order, each protocol variant after its base."""
    base, _, protocol = name.partition("@")
    rank = DEFAULT_METRICS.index(base) if base in DEFAULT_METRICS else len(DEFAULT_METRICS)
    return rank, bool(protocol), name


def get_spec(name: str) -> MetricSpec:
    """The registered spec, or a default-protocol spec for any other pyiqa metric name."""
    if name in METRICS:
        return METRICS.get(name)
    if "@" not in name and name not in ("fid", "inception_score"):  # those score folders, not images
        import pyiqa

        if name in pyiqa.list_models():
            return MetricSpec(name, name, _pyiqa_protocol("see pyiqa", impl=f"pyiqa {name} defaults"))
    raise UnknownNameError(unknown_name_message("metric", name, metric_names()))


def parse_metric_list(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"psnr,ssim"`` or a list -> validated names (``all`` = every registered metric)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return metric_names()
    for n in names:
        get_spec(n)
    return names


# --------------------------------------------------------------------------------------- images
def check_range(image: torch.Tensor, name: str) -> None:
    """Raise :class:`MetricInputError` unless every value lies in [0, 1]."""
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise MetricInputError(f"{name}: values outside [0, 1] (min {lo:.4g}, max {hi:.4g})")


def check_fr_inputs(image: torch.Tensor, ref: torch.Tensor, image_name: str, ref_name: str) -> None:
    """Raise :class:`MetricInputError` unless both tensors have one size and values in [0, 1]."""
    if tuple(image.shape[-2:]) != tuple(ref.shape[-2:]):
        raise MetricInputError(f"size mismatch: {image_name} is {image.shape[-1]}x{image.shape[-2]} but "
                               f"{ref_name} is {ref.shape[-1]}x{ref.shape[-2]} (width x height)")
    check_range(image, image_name)
    check_range(ref, ref_name)


class Pair:
    """An image and its optional reference, loaded lazily and shared by every metric."""

    def __init__(self, image: str | Path, ref: str | Path | None = None) -> None:
        self.image_path = Path(image)
        self.ref_path = Path(ref) if ref is not None else None

    @cached_property
    def image(self) -> torch.Tensor:
        from backlit_core.image_io import load_image

        return load_image(self.image_path)[None]

    @cached_property
    def ref(self) -> torch.Tensor:
        from backlit_core.image_io import load_image

        return load_image(self.required_ref())[None]

    def required_ref(self) -> Path:
        """The reference file; a full-reference metric without one is an input error."""
        if self.ref_path is None:
            raise MetricInputError(f"{self.image_path}: no ground truth for a full-reference metric")
        return self.ref_path

    def checked(self) -> tuple[torch.Tensor, torch.Tensor]:
        check_fr_inputs(self.image, self.ref, str(self.image_path), str(self.ref_path))
        return self.image, self.ref


def _read_gray_rave(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise MetricInputError(f"{path}: cv2 cannot read this image")
    return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)  # on BGR data: the RAVE script's swap, on purpose


def _gray_pair_rave(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    enh, gt = _read_gray_rave(pair.image_path), _read_gray_rave(pair.required_ref())
    if enh.shape != gt.shape:
        raise MetricInputError(f"size mismatch: {pair.image_path} is {enh.shape[1]}x{enh.shape[0]} but "
                               f"{pair.ref_path} is {gt.shape[1]}x{gt.shape[0]} (width x height)")
    return enh, gt


def _rave_lpips_tensor(path: Path) -> torch.Tensor:
    import torchvision.transforms.functional as TF
    from PIL import Image

    with Image.open(path) as img:
        img = TF.resize(img.convert("RGB"), RAVE_LPIPS_SHORT_SIDE)
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)[None]


# -------------------------------------------------------------------------------------- metrics
@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Inference with TF32 off. pyiqa's own ``forward`` turns cuDNN TF32 on, which moves BRISQUE by
    up to 10 points on an H100; we call the metric networks directly inside this instead."""
    import torch

    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True,
                                                                allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot run here; ``reason`` says why (shown in tables and the report)."""

    name: str
    reason: str
    protocol: str = "pyiqa"

    def __bool__(self) -> bool:
        return False


class Metric:
    """A created metric: ``score(pair) -> float`` plus direction, mode and range from pyiqa."""

    def __init__(self, spec: MetricSpec, model: Any) -> None:
        self.spec = spec
        self.model = model
        self.lower_better = bool(model.lower_better)
        self.mode = str(model.metric_mode)
        self.score_range = str(model.score_range)
        self._score: Callable[[Pair], float] = getattr(self, f"_score_{spec.scorer.replace('-', '_')}")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def protocol(self) -> str:
        return self.spec.protocol.name

    @property
    def full_reference(self) -> bool:
        return self.mode == "FR"

    def score(self, pair: Pair) -> float:
        """Score one pair; raises :class:`MetricInputError` for inputs the metric cannot take."""
        return float(self._score(pair))

    def _score_pyiqa(self, pair: Pair) -> float:
        dev = self.model.device
        with exact_fp32():
            if self.full_reference:
                img, ref = pair.checked()
                return self.model.net(img.to(dev), ref.to(dev)).item()
            check_range(pair.image, str(pair.image_path))
            return self.model.net(pair.image.to(dev)).item()

    def _score_rave_psnr(self, pair: Pair) -> float:
        import cv2

        enh, gt = _gray_pair_rave(pair)
        return cv2.PSNR(gt, enh)

    def _score_rave_ssim(self, pair: Pair) -> float:
        from skimage.metrics import structural_similarity

        enh, gt = _gray_pair_rave(pair)
        data_range = int(enh.max()) - int(enh.min())
        if data_range == 0:
            raise MetricInputError(f"{pair.image_path}: constant image, the RAVE SSIM data range (max - min) is 0")
        return structural_similarity(gt, enh, data_range=data_range)

    def _score_rave_lpips(self, pair: Pair) -> float:
        gt, enh = _rave_lpips_tensor(pair.required_ref()), _rave_lpips_tensor(pair.image_path)
        if gt.shape != enh.shape:
            raise MetricInputError(f"size mismatch after resizing: {pair.image_path} {tuple(enh.shape[-2:])} vs "
                                   f"{pair.ref_path} {tuple(gt.shape[-2:])}")
        dev = self.model.device
        with exact_fp32():
            return self.model.net(gt.to(dev), enh.to(dev), normalize=False).item()


# -------------------------------------------------------------------------------------- loading
_LOADED: dict[tuple[str, str, str], Metric | Unavailable] = {}


def metric_weights_dir(weights_dir: str | Path | None = None) -> Path | None:
    """Local metric parameter files: the argument, ``$BACKLIT_BENCH_METRIC_WEIGHTS``, else
    ``metric-weights`` of the reference data (``$BACKLIT_BENCH_REFERENCE``, default ``../shared/reference``)
    when it exists."""
    value = weights_dir or os.environ.get(WEIGHTS_ENV)
    if value:
        return Path(value)
    return SHARED_METRIC_WEIGHTS if SHARED_METRIC_WEIGHTS.is_dir() else None


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "BACKLIT_BENCH_OFFLINE"))


@contextlib.contextmanager
def _fail_fast_downloads(seconds: float) -> Iterator[None]:
    """Short socket timeout while pyiqa may download; its prints go to stderr, not our tables."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        socket.setdefaulttimeout(old)


def _create(spec: MetricSpec, device: str, weights_dir: Path | None) -> Metric | Unavailable:
    import torch

    kwargs = dict(spec.options)
    local = weights_dir / spec.local_file if weights_dir and spec.local_file else None
    if local is not None and local.is_file():
        kwargs["pretrained_model_path"] = str(local)
        missing = [f for f in spec.cache_files if f.startswith("checkpoints/")]
    else:
        missing = list(spec.cache_files)
    hub = Path(torch.hub.get_dir())
    missing = [hub / f for f in missing if not (hub / f).is_file()]
    if missing and _offline():
        where = f" or put {spec.local_file} in {weights_dir or '$' + WEIGHTS_ENV}" if spec.local_file else ""
        return Unavailable(spec.name, f"weights not available offline: {', '.join(map(str, missing))} missing "
                                      f"(pre-fill the torch hub cache{where})", spec.protocol.name)
    try:
        import pyiqa

        with _fail_fast_downloads(DOWNLOAD_TIMEOUT_S):
            model = pyiqa.create_metric(spec.pyiqa_name, device=torch.device(device), **kwargs)
    except Exception as exc:  # noqa: BLE001 - any creation failure makes the metric unavailable
        cause = f"{type(exc).__name__}: {exc}"
        if missing:
            cause = f"weights {', '.join(map(str, missing))} missing and the download failed ({cause})"
        return Unavailable(spec.name, f"cannot create pyiqa metric {spec.pyiqa_name!r}: {cause}", spec.protocol.name)
    model.eval()
    return Metric(spec, model)


def load_metric(name: str, *, device: str = "cpu", weights_dir: str | Path | None = None) -> Metric | Unavailable:
    """Create ``name`` once per process (cached); an :class:`Unavailable` when it cannot run here."""
    spec = get_spec(name)
    wdir = metric_weights_dir(weights_dir)
    dev = str(resolve_device(device))
    key = (name, dev, str(wdir))
    if key not in _LOADED:
        _LOADED[key] = _create(spec, dev, wdir)
    return _LOADED[key]


def load_metrics(names: list[str], *, device: str = "cpu", weights_dir: str | Path | None = None
                 ) -> tuple[list[Metric], list[Unavailable]]:
    """Split ``names`` into created metrics and unavailable ones (with reasons)."""
    ok: list[Metric] = []
    missing: list[Unavailable] = []
    for n in names:
        m = load_metric(n, device=device, weights_dir=weights_dir)
        (ok if isinstance(m, Metric) else missing).append(m)
    return ok, missing


# ---------------------------------------------------------------------------------- diagnostics
# Not quality metrics: per-image facts the health checks read (benchmark/health.py), stored as score
# rows under protocol DIAGNOSTIC_PROTOCOL. name -> lower_better (as for metrics; nothing ranks on them).
DIAGNOSTICS = {"psnr_vs_input": False, "output_std": False, "output_clipped": True}
DIAGNOSTIC_PROTOCOL = "diagnostic: RGB float [0, 1], native size; psnr_vs_input against the system's own input"
PSNR_CAP_DB = 100.0  # psnr_vs_input of identical images


def diagnostics(image: torch.Tensor, source: torch.Tensor | None) -> dict[str, float]:
    """Pixel sd and share of values at 0 or 255 of an output; its PSNR to ``source`` (its input) when
    given with the same size, capped at :data:`PSNR_CAP_DB`."""
    out = {}
    if source is not None and tuple(source.shape) == tuple(image.shape):
        mse = float(((image - source) ** 2).mean())
        out["psnr_vs_input"] = float(min(PSNR_CAP_DB, 10.0 * np.log10(1.0 / mse))) if mse > 0 else PSNR_CAP_DB
    out["output_std"] = float(image.std())
    out["output_clipped"] = float(((image <= 0.5 / 255) | (image >= 254.5 / 255)).float().mean())
    return out  # in DIAGNOSTICS order
