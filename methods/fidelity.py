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
    round_extension: str = "guidance-320"
    clip_lit_start: str = "released-init"
    reinit_cap: str = "uncapped"
    latent_schedule: str = "clip-lit-style"

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
    description: str  # with the upstream file:line it follows
    measured_effect: str | None = None


@dataclass(frozen=True)
class Reconstruction:
    """A place where the project departs from upstream's code without a switch: upstream cannot run
    as committed there, or the difference is below what a switch is worth (effect argued or measured)."""

    name: str
    upstream: str  # what upstream's code does, file:line at the pinned commits
    here: str  # what the project does
    effect: str  # measured or argued


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
    LedgerEntry(
        "round_extension", "guidance-320", "training-loss",
        "not stated (rounds of 2100 iterations, extended by 60 while the loss is above 90)",
        "the loss an enhancer round's extension rule compares with its threshold (90): upstream's "
        "320 x guidance + 22.5 x identity (RAVE train_rave.py:252 `cliploss + 0.9*clip_MSEloss` with "
        "cliploss = 16*20*L_clip at :192, while it trains on 6*cliploss at :198; CLIP-LIT train.py:292, "
        "the same as its training loss) or the loss the enhancer trains on (RAVE: 1920 x guidance + 22.5 x "
        "identity, so rounds extend more often). Only RAVE and RAVE-shifted, whose guidance weight is "
        "6 x 320, see a difference"),
    LedgerEntry(
        "clip_lit_start", "released-init", "scratch",
        "from scratch: 8000 CE iterations for the prompts, 1000 reconstruction iterations, then rounds",
        "where CLIP-LIT starts: upstream's defaults (train.py:450-453 load_pretrain / load_pretrain_prompt "
        "True; :134-160) load the released init_enhancement_model.pth (weights registry: clip-lit-init) and "
        "init_prompt_pair.pth and run no CE or warm-up, 71.3K iterations (num_epochs 2000, :436); or from "
        "scratch (8000 CE + 1000 warm-up, 109.4K iterations; README, issues #4/#5). Without the init "
        "files a released-init run is skipped with the reason; train_summary.json `start` records which"),
    LedgerEntry(
        "reinit_cap", "uncapped", "capped",
        "not stated (spec 3.3: below 8 dB after 100 iterations re-initialises)",
        "warm-up re-initialisation: as often as the running PSNR(out, in) stays below 8 dB (upstream: "
        "CLIP-LIT train.py:251-252 and :270-282, RAVE train.py:256-257, :277-287, no counter), or at most "
        "the schedule's max_reinits (5) times, after which the warm-up ends with a warning"),
    LedgerEntry(
        "latent_schedule", "clip-lit-style", "literal",
        "everything as CLIP-LIT (spec 4.1)",
        "latent-prompt's loop. Upstream's RAVE train.py (a207067) cannot run as committed (:23 imports "
        "`inference`, which inference.py does not define; :418 a keyboard-layout typo in `unet_train_iters` "
        "raises NameError at the first prompt round; :283 `load_unet` is undefined), so the default is a "
        "reconstruction: CLIP-LIT's own loop (ZhexinLiang/CLIP-LIT train.py:203-414), which this script "
        "re-implements. `literal` reads RAVE train.py as written: its CE loop (:62-111) does not advance "
        "`total_iteration`, so the warm-up PSNR monitor and re-initialisation stay on until iteration 9000 "
        "(:253-257; the buffer zeroed at each round start, :197, so each round before then starts with a "
        "re-initialisation and, while the counter is under the lengthened warm-up, :239, the warm-up loss), "
        "the snapshot buffer holds PSNR until then (:254), no result is recorded before it (:272-273), the "
        "result slot toggles only from 8000 on (:316-318), and prompt rounds 1-4 use only 200 x "
        "ranking(backlit > well-lit, margin 1.0) (:323-332, :369-375)"),
)

RECONSTRUCTIONS: tuple[Reconstruction, ...] = (
    Reconstruction(
        "rave_shifted_repairs",
        "RAVE train_rave.py (a207067) fails before training: :134 `scores[:15]` is undefined (the "
        "ascending `token_scores` of :128 is meant, as the print at :135 shows); :77-79 call "
        "`lowlight_loader(backlit, welllit)`, which takes one path (dataloader_images.py:123); :235 "
        "`load_unet` is undefined (re-initialisation); :19 imports dataloader_prompt_margin, which sits in "
        "CLIP/; configs/train/rave.yaml:24-25 leaves `remove_first_n_tokens` unindented, so `guidance` is "
        "null and :121 fails",
        "read as: :134 uses `token_scores[:15]` (the 15 lowest scores give the added part); the loader gets "
        "the backlit folder only (as train.py:137); re-initialisation builds a fresh enhancer with a new seed "
        "(as CLIP-LIT train.py:276-278); the unused import is dropped; `guidance.remove_first_n_tokens` > 0 "
        "switches the shift on and 15 stays hard-coded (:130, :134; setting `shift_tokens`)",
        "none beyond the reading itself: the direction u = n(a + b) and r' = n(r - <u, r> u), tau = <v_w, r'> "
        "(:138-145) follow these lines exactly (tests/test_losses.py)"),
    Reconstruction(
        "augmentation",
        "dataloader_images.py:67-101 (both repositories): flips and transpose on uint8, then zoom (:83-87, "
        "cv2.warpAffine INTER_LINEAR, BORDER_REFLECT, centre h/2+0.5) and rotation (:88-90, about "
        "(w//2, h//2)) as two separate uint8 warps, each rounded to 8 bits",
        "methods/augment.py: the same flips, transpose, probabilities and ranges; zoom and rotation as one "
        "bilinear resampling of the float image about its centre, reflected borders, no rounding",
        "measured once (scikit-image's astronaut at 512 px, 12 random zoom + rotation draws, central 256 px): "
        "PSNR between upstream's result and ours 27.9 dB median (24.9-37.9); the two 8-bit roundings alone "
        "cost 58 dB, the second interpolation 37.8 dB, and the rest is the centre convention (upstream zooms "
        "about (h/2 + 0.5, w/2 + 0.5) and rotates about (w//2, h//2), up to a pixel off the centre), i.e. a "
        "sub-pixel shift of the augmented image. Argued: the same flips, zooms and angles are drawn with the "
        "same probabilities, so the training distribution differs by that shift and a little blur only"),
    Reconstruction(
        "reference_resize",
        "RAVE train_rave.py:50 `preprocess(img)`: CLIP's torchvision Resize(224, BICUBIC) on the PIL uint8 "
        "image (longer side truncated, int(224 * long / short)), CenterCrop offsets rounded, ToTensor",
        "methods/data.py center_crop_preprocess: torch antialiased bicubic on floats, longer side rounded, "
        "crop offsets floored, no 8-bit rounding",
        "measured (tests/test_fidelity.py; effnet-lite0, embedded training images): the preprocessed images "
        "agree to 32-35 dB PSNR, their embeddings to cosine 0.982 (min) / 0.990 (median), RAVE's r to cosine "
        "0.991 and tau 0.2654 vs 0.2675 (PIL). The largest of these reconstructions; not measured on "
        "trained results"),
    Reconstruction(
        "inference_epsilon",
        "CLIP-LIT test.py:51 and RAVE inference.py:28 divide by L without epsilon "
        "(`clamp(img / light_map, 0, 1)`); training adds 1e-9 (CLIP-LIT train.py:233, RAVE train.py:231)",
        "methods/network.py apply_illumination: 1e-9 at inference too",
        "measured (tests/test_fidelity.py): with the released CLIP-LIT enhancer on reference photos the "
        "outputs are bit-identical (L >= 0.07 there); they can differ only where L = 0, where upstream gives "
        "0/0 (not a number) for a black pixel and we give 0"),
    Reconstruction(
        "output_bias_init",
        "the last conv's bias at PyTorch's default (CLIP-LIT train.py:143 weights_init sets conv weights "
        "only)",
        "`paper` schedule: the same; `quick` schedule only: the bias set to 1 (L ~ 1, identity start)",
        "argued and measured (docs/methods.md, 'Enhancer start'): upstream's start gives a white output with "
        "no gradient on most seeds in the quick schedule's 20-iteration warm-up; never used by the paper "
        "profile"),
)

VALUES: dict[str, tuple[str, str]] = {e.name: (e.upstream, e.alternative) for e in LEDGER}
