"""``synthetic-backlit``: an offline dataset made from real photos shipped inside installed packages.

Photos (:data:`TEST_PHOTOS`, :data:`TRAIN_PHOTOS`): scikit-image's ``astronaut``, ``chelsea``, ``coffee``,
``camera``, ``motorcycle_left`` and ``motorcycle_right``, matplotlib's ``grace_hopper``, and two real
photos that the pyiqa 0.1.16 wheel installs under ``site-packages/tests/test_efficiency_img_dir/``
(``garden``: frame_4wrwr48cdk6rbcjl.jpg; ``snowy_highway``: frame_9ogwhvvy7gfj6jzh.jpg), found through
pyiqa's RECORD and checked against its sha256.

Split: every well-lit colour scene but one is a test scene, so that a paired test on per-scene means
has 6 scenes (df 5); the training photos are the two views of the motorcycle (one scene) and the grey
``camera`` (as RGB), never crops of a test photo. Left out: ``rocket`` and pyiqa's night street
SPAQ_10241.jpg (night scenes are no well-lit reference) and its sunset beach frame_7gzdcz9sif0ekg31.jpg
(already backlit: no well-lit ground truth).
Training photos give random 4:3 crops (scale, position, mirror) that become backlit inputs with the
crop as paired ground truth, plus *other* crops kept well-lit as the unpaired set (never the ground
truth of a training input); test photos give the test pairs (the crops of one photo are one scene).

Backlighting model (per image, seeded, in linear light; ``backlight``):

1. subject mask: a soft ellipse rising from the bottom of the frame united with the ground below a
   tilted horizon (smooth, so no cut-out artefacts);
2. spatially varying exposure: the subject 2-3.2 stops darker, the background 0.4-1 stop brighter,
   up to 0.7 stops more near the light, and up to 2 stops more until the brightest 5-20 % of the
   background clip; with a contrast expansion of the luminance (power 1.4-1.8) dark parts sink;
3. a light source behind the scene in the upper part of the frame (the least occluded of 8 random
   spots): a bright core and a wide halo, 90 % occluded by the subject, plus a faint veiling flare;
4. Poisson-Gaussian sensor noise; clipping to [0, 1] (blown highlights); sRGB 8-bit.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from backlit_core.atomic import write_json
from benchmark.data.errors import DatasetError

VERSION = 3  # bump when the output for a given seed changes
TRAIN_PHOTOS = ("motorcycle_left", "motorcycle_right", "camera")
TEST_PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper", "garden", "snowy_highway")
PYIQA_PHOTOS = {  # name -> (file in pyiqa's wheel, sha256 as its RECORD lists it: urlsafe base64, no padding)
    "garden": ("tests/test_efficiency_img_dir/frame_4wrwr48cdk6rbcjl.jpg", "5-5YO3lfmX-FsDoWqnl_NJXi_gJVY_w0MAvQn2wWs64"),
    "snowy_highway": ("tests/test_efficiency_img_dir/frame_9ogwhvvy7gfj6jzh.jpg",
                      "Xt431H5d78DviC7M_A4ZdKGnblS4QJymdfzHD_BG4kA"),
}
MAX_UPSCALE = 1.25  # crops are at most this much enlarged


@dataclass(frozen=True)
class GeneratorParams:
    """Seed and sizes; counts are per photo (3 training photos, 6 test photos)."""

    seed: int = 0
    long_side: int = 384
    train_crops: int = 7
    unpaired_crops: int = 5
    test_crops: int = 2

    def __post_init__(self) -> None:
        if not 64 <= self.long_side <= 600:
            raise ValueError(f"long_side must be in [64, 600], got {self.long_side}")
        if min(self.train_crops, self.unpaired_crops, self.test_crops) < 1:
            raise ValueError("train_crops, unpaired_crops and test_crops must be at least 1")


def pyiqa_photo(name: str) -> Path:
    """The file of one of :data:`PYIQA_PHOTOS` inside the installed pyiqa, checked against its sha256."""
    file, digest = PYIQA_PHOTOS[name]
    try:
        entry = next((f for f in metadata.files("pyiqa") or [] if str(f) == file), None)
    except metadata.PackageNotFoundError:
        entry = None
    where = f"pyiqa's {file} (photo {name!r} of synthetic-backlit; installed by the pyiqa 0.1.16 wheel)"
    if entry is None or not Path(entry.locate()).is_file():
        raise DatasetError(f"{where}: not found; install the locked environment (make install)")
    path = Path(entry.locate())
    actual = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
    if actual != digest or (entry.hash is not None and entry.hash.value != digest):
        raise DatasetError(f"{path}: sha256 {actual} is not the one pyiqa 0.1.16's RECORD lists ({digest}) for {where}")
    return path


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as H x W x 3 uint8 (grey photos as three equal channels)."""
    from PIL import Image, ImageOps

    if name in PYIQA_PHOTOS or name == "grace_hopper":
        from matplotlib import cbook

        path = pyiqa_photo(name) if name in PYIQA_PHOTOS else cbook.get_sample_data("grace_hopper.jpg",
                                                                                     asfileobj=False)
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    from skimage import data

    if name.startswith("motorcycle_"):
        return data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    photo = getattr(data, name)()
    return np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo


def random_crop(photo: np.ndarray, long_side: int, rng: np.random.Generator) -> np.ndarray:
    """A random 4:3 (3:4 for portrait photos) crop, maybe mirrored, resized to ``long_side``."""
    from PIL import Image

    h, w = photo.shape[:2]
    portrait = h > w
    out_w, out_h = (long_side * 3 // 4, long_side) if portrait else (long_side, long_side * 3 // 4)
    full = min(w / out_w, h / out_h)  # largest window, in output-pixel units
    scale = rng.uniform(min(1.0, 1 / (MAX_UPSCALE * full)) if full > 0 else 1.0, 1.0) * full
    cw, ch = round(out_w * scale), round(out_h * scale)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = Image.fromarray(photo[y0:y0 + ch, x0:x0 + cw]).resize((out_w, out_h), Image.Resampling.LANCZOS)
    arr = np.asarray(crop)
    return arr[:, ::-1].copy() if rng.random() < 0.5 else arr


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def subject_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth subject/foreground mask in [0, 1] (1 = subject): an ellipse rising from the bottom of
    the frame united with the ground below a tilted horizon, with soft edges."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.7, 1.0) * h
    rx, ry = rng.uniform(0.2, 0.4) * w, rng.uniform(0.5, 0.8) * h
    blob = _sigmoid((1.0 - np.hypot((x - cx) / rx, (y - cy) / ry)) / 0.15)
    horizon = rng.uniform(0.7, 0.95) * h + rng.uniform(-0.2, 0.2) * (x - w / 2)
    return np.maximum(blob, _sigmoid((y - horizon) / (0.05 * h)))


def backlight(gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply the backlighting model to a uint8 photo; return (backlit uint8, subject mask)."""
    img = gt.astype(np.float64) / 255.0
    h, w = img.shape[:2]
    mask = subject_mask(h, w, rng)
    diag = float(np.hypot(h, w))
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cand = np.stack([rng.uniform(0.1, 0.9, 8) * w, rng.uniform(-0.15, 0.25, 8) * h], 1)  # light: least occluded of 8
    sx, sy = cand[np.argmin(mask[np.clip(cand[:, 1], 0, h - 1).astype(int), cand[:, 0].astype(int)])]
    dist = np.hypot(x - sx, y - sy) / diag
    ev_subject, ev_back = rng.uniform(-3.2, -2.0), rng.uniform(0.4, 1.0)
    ev = mask * ev_subject + (1 - mask) * (ev_back + 0.7 * np.exp(-(dist / 0.4) ** 2))
    lin = srgb_to_linear(img)
    luma = np.maximum(lin @ np.array([0.2126, 0.7152, 0.0722]), 1e-4)
    target = np.exp2(ev) * luma ** rng.uniform(1.4, 1.8)  # contrast expansion: shadows sink, highlights clip
    background = mask < 0.5
    if background.any():  # expose for the light: the brightest 5-20 % of the background blow out
        bright = np.quantile(target[background], 1 - rng.uniform(0.05, 0.2))
        target = target * np.clip(1.0 / max(bright, 1e-6), 1.0, 4.0) ** np.clip(1 - 2 * mask, 0, 1)
    lin = lin * (target / luma)[..., None]
    tint = np.array([1.0, rng.uniform(0.82, 0.95), rng.uniform(0.6, 0.85)])
    glow = rng.uniform(3.0, 6.0) * np.exp(-(dist / rng.uniform(0.04, 0.08)) ** 2)
    glow += rng.uniform(0.25, 0.5) * np.exp(-(dist / rng.uniform(0.3, 0.5)) ** 2)
    lin += glow[..., None] * tint * (1 - 0.9 * mask[..., None]) + rng.uniform(0.003, 0.01) * tint
    lin += rng.standard_normal(lin.shape) * np.sqrt(rng.uniform(1e-4, 3e-4) * np.clip(lin, 0, 1) + 2e-6)
    out = linear_to_srgb(np.clip(lin, 0.0, 1.0))
    return np.floor(out * 255 + 0.5).astype(np.uint8), mask


def _rng(seed: int, photo: str, role: int, k: int) -> np.random.Generator:
    index = (TRAIN_PHOTOS + TEST_PHOTOS).index(photo)
    return np.random.default_rng([seed, index, role, k])


def _save(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def generate(out: Path, params: GeneratorParams = GeneratorParams()) -> dict:
    """Write the dataset in the standard layout into ``out`` plus ``contact_sheet.png`` and ``scenes.json``
    (test image stem -> source photo: crops of one photo are one scene); return a summary (no times)."""
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
    counts = {"train/backlit": 0, "train/welllit-unpaired": 0, "test/input": 0}
    for split, photos, n in (("train", TRAIN_PHOTOS, params.train_crops), ("test", TEST_PHOTOS, params.test_crops)):
        inp_dir, gt_dir = ("train/backlit", "train/welllit-paired") if split == "train" else ("test/input", "test/gt")
        for photo in photos:
            src = load_photo(photo)
            for k in range(1, n + 1):
                rng = _rng(params.seed, photo, 0, k)
                gt = random_crop(src, params.long_side, rng)
                inp, _ = backlight(gt, rng)
                name = f"{photo.replace('_', '-')}-{k:02d}.png"
                _save(inp, out / inp_dir / name)
                _save(gt, out / gt_dir / name)
                pairs.append((f"{split}/{name[:-4]}", inp, gt))
                counts[inp_dir] += 1
            if split == "train":
                for k in range(1, params.unpaired_crops + 1):
                    well = random_crop(src, params.long_side, _rng(params.seed, photo, 1, k))
                    _save(well, out / "train/welllit-unpaired" / f"{photo.replace('_', '-')}-w{k:02d}.png")
                    counts["train/welllit-unpaired"] += 1
    counts["train/welllit-paired"], counts["test/gt"] = counts["train/backlit"], counts["test/input"]
    contact_sheet(pairs, out / "contact_sheet.png")
    write_json(out / "scenes.json", {name.removeprefix("test/"): name.removeprefix("test/").rsplit("-", 1)[0]
                                     for name, _, _ in pairs if name.startswith("test/")})
    return {"generator": {**asdict(params), "version": VERSION}, "counts": counts}


def contact_sheet(pairs: list[tuple[str, np.ndarray, np.ndarray]], path: Path, box: int = 176, per_row: int = 3) -> Path:
    """Rows of ``label | input | ground truth`` thumbnails, for a person to check the look."""
    from PIL import Image, ImageDraw

    pad, label_h = 6, 14
    cell_w = 2 * box + 3 * pad
    rows = -(-len(pairs) // per_row)
    sheet = Image.new("RGB", (per_row * cell_w, rows * (box + label_h + pad) + pad), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for i, (label, inp, gt) in enumerate(pairs):
        x0, y0 = (i % per_row) * cell_w + pad, (i // per_row) * (box + label_h + pad) + pad
        draw.text((x0, y0), f"{label}: input | ground truth", fill=(230, 230, 230))
        for j, arr in enumerate((inp, gt)):
            im = Image.fromarray(arr)
            im.thumbnail((box, box), Image.Resampling.LANCZOS)
            sheet.paste(im, (x0 + j * (box + pad) + (box - im.width) // 2, y0 + label_h + (box - im.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
