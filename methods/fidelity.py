"""Fidelity switches: every place where upstream's code, the papers' text and a cleaner choice part.

Each switch has two values. The default is what the upstream code does (ZhexinLiang/CLIP-LIT,
Atmyre/RAVE; methods-spec sections 2-4, 6, 7); the other is the paper's text or the cleaner
choice. :data:`LEDGER` describes each switch for the report (``measured_effect`` is filled in by
whoever measures it). Training records the values in train_summary.json (``fidelity``) and in the
checkpoint, so a resumed run with another setting starts afresh.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from backlit_core.registry import UnknownNameError, unknown_name_message


@dataclass(frozen=True)
class Fidelity:
    """One value per switch; the defaults reproduce the upstream code."""

    ranking_order: str = "new-then-old"
    snapshot: str = "best-running-loss"
    vocabulary: str = "decoded-text"
    ssim_channel: str = "y"
    clip_precision: str = "identity-fp16"
    warmup_monitor: str = "pyiqa-y"
    resize_filter: str = "lanczos"

    def __post_init__(self) -> None:
        for f in fields(self):
            valid = VALUES[f.name]
            value = getattr(self, f.name)
            if value not in valid:
                raise ValueError(f"fidelity setting {f.name} must be one of {', '.join(valid)}; got {value!r}")

    @classmethod
    def from_dict(cls, d: dict | None) -> Fidelity:
        """Validated settings from a mapping (missing keys keep the upstream default)."""
        d = dict(d or {})
        names = [f.name for f in fields(cls)]
        for key in d:
            if key not in names:
                raise UnknownNameError(unknown_name_message("fidelity setting", key, names))
        return cls(**d)

    @classmethod
    def coerce(cls, value: dict | Fidelity | None) -> Fidelity:
        return value if isinstance(value, Fidelity) else cls.from_dict(value)

    def asdict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def identity_precision(self, encoder: str, device_type: str) -> str:
        """``fp16`` for a ``clip:`` identity encoder on CUDA under ``identity-fp16`` (upstream loads
        RN101 straight onto the GPU, which keeps OpenAI's fp16 weights), else ``fp32``. On CPU
        upstream never ran; we stay in fp32 there."""
        upstream = self.clip_precision == "identity-fp16" and encoder.startswith("clip:") and device_type == "cuda"
        return "fp16" if upstream else "fp32"

    @property
    def ssim_metric(self) -> str:
        """The metric name of the chosen SSIM protocol (benchmark/metrics.py)."""
        return {"y": "ssim", "rgb": "ssim@rgb"}[self.ssim_channel]


@dataclass(frozen=True)
class LedgerEntry:
    name: str
    upstream: str  # the value of the upstream code (the default)
    alternative: str
    paper: str  # what the papers' text says
    description: str
    measured_effect: str | None = None


LEDGER: tuple[LedgerEntry, ...] = (
    LedgerEntry(
        "ranking_order", "new-then-old", "old-then-new",
        "results should move toward well-lit over the rounds (spec 3.5; the exact order of Eq. L_prompt2 "
        "is unverified), i.e. old-then-new",
        "CLIP-LIT prompt refinement with two result sets: backlit > newest > older > well-lit (upstream's "
        "two-slot buffer) or backlit > older > newest > well-lit"),
    LedgerEntry(
        "snapshot", "best-running-loss", "last",
        "not stated",
        "enhancer exported (and, for CLIP-LIT, the source of the intermediate results): the snapshot with the "
        "best 30-iteration running loss, checked every 20 iterations and reset each round, or the last one"),
    LedgerEntry(
        "vocabulary", "decoded-text", "token-ids",
        "not stated (\"shifting by 15 tokens\" of CLIP's vocabulary)",
        "RAVE-shifted vocabulary: each token id decoded to text, re-tokenised and de-duplicated by text "
        "(upstream), or every BPE id except SOT/EOT as a one-token prompt"),
    LedgerEntry(
        "ssim_channel", "y", "rgb",
        "SSIM, channel not stated; methods-spec 6.1 recommends RGB for a clean benchmark",
        "SSIM on the luma channel (RAVE's script: grayscale) or on RGB; both are scored "
        "(ssim and ssim@rgb), the switch picks the headline one"),
    LedgerEntry(
        "clip_precision", "identity-fp16", "fp32",
        "not stated",
        "the RN101 identity encoder in fp16 on GPU (upstream loads it onto CUDA, keeping OpenAI's fp16 "
        "weights) or everything in fp32"),
    LedgerEntry(
        "warmup_monitor", "pyiqa-y", "luma",
        "not stated (spec 3.3: PSNR below 8 dB re-initialises)",
        "warm-up PSNR(out, in): pyiqa's Y channel (BT.601 studio range, 16-235) or full-range BT.601 luma; "
        "1.3 dB apart, so it changes when the 8 dB re-initialisation rule fires"),
    LedgerEntry(
        "resize_filter", "lanczos", "bilinear",
        "not stated",
        "resizing training images to 512 / 256 px (enhancer, CE and ranking inputs, intermediate results): "
        "PIL Lanczos on 8-bit images as upstream's Image.ANTIALIAS, or antialiased bilinear in torch"),
)

VALUES: dict[str, tuple[str, str]] = {e.name: (e.upstream, e.alternative) for e in LEDGER}
