"""Image grids: input | each system | ground truth, for every test image (up to a limit), with the same
zoomed crop on every column and, where there is a ground truth, each column's error map against it.

The crop box sits on detail: the window with the most gradient energy in the ground truth (else in the
mean of the systems' outputs), among windows where neither the ground truth nor the input is mostly
clipped (>= 0.98 or <= 0.02). Images are ordered by how much the systems disagree on them.
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backlit_core.image_io import ImageReadError, load_image
from benchmark.report.data import Results
from benchmark.system import System

THUMB_WIDTH = 240
PAGE_WIDTH = 1220  # pixels available to one grid row in the HTML report
BOX_COLOUR = (255, 40, 40)
CLIP_LOW, CLIP_HIGH = 0.02, 0.98
MAX_CLIPPED = 0.5  # a window whose ground truth or input has more clipped pixels than this is not zoomed on
ERROR_MAX = 0.5  # |output - ground truth| (mean over RGB) mapped to the top of the colour scale
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass
class Cell:
    label: str
    path: Path
    href: str | None  # link to the full-resolution file, relative to the report; None outside the results folder
    thumb: str  # base64 JPEG: whole image with the crop box drawn
    crop: str  # base64 JPEG: the crop, enlarged to the thumbnail width
    error: str | None = None  # base64 JPEG: |image - ground truth| (mean over RGB), 0..ERROR_MAX
    mae: float | None = None  # mean absolute error against the ground truth, 0..1
    flagged: bool = False  # the system has a health flag: its label is greyed


@dataclass
class GridRow:
    dataset: str
    image: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in the input's pixels
    cells: list[Cell]
    scene: str | None = None


def _b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _find(folder: Path | None, stem: str) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    return next((p for p in sorted(folder.iterdir()) if p.stem == stem and p.is_file()), None)


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``values`` (H x W) over every ``size`` x ``size`` window (top-left indexed)."""
    integral = np.pad(values.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def _clipped(arr: np.ndarray) -> np.ndarray:
    luma = arr @ LUMA
    return ((luma >= CLIP_HIGH) | (luma <= CLIP_LOW)).astype(float)


def detail_box(reference: np.ndarray, size: int, avoid: list[np.ndarray] = ()) -> tuple[int, int, int, int]:
    """``size`` x ``size`` window (clipped to the image) with the most gradient energy of ``reference``
    (H x W x 3 in [0, 1]) among those where no array of ``avoid`` is mostly clipped; gradients at and next to
    pixels clipped in ``avoid`` do not count. If every window is mostly clipped, the least clipped one."""
    h, w = reference.shape[:2]
    size = max(1, min(size, h, w))
    gy, gx = np.gradient(reference @ LUMA)
    mask = np.zeros((h, w))
    for arr in avoid:
        if arr.shape[:2] == (h, w):
            mask = np.maximum(mask, _clipped(arr))
    near = np.pad(mask, 1, mode="edge")  # the edges of clipped regions are not detail either
    near = np.maximum.reduce([near[1:-1, 1:-1], near[:-2, 1:-1], near[2:, 1:-1], near[1:-1, :-2], near[1:-1, 2:]])
    energy = _window_sums((gx * gx + gy * gy) * (1 - near), size)
    clipped = _window_sums(mask, size) / (size * size)
    ok = clipped <= MAX_CLIPPED
    score = np.where(ok, energy, -np.inf) if ok.any() else -clipped
    top, left = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(left), int(top), int(left) + size, int(top) + size


def error_image(arr: np.ndarray, gt: np.ndarray) -> tuple[Image.Image, float]:
    """|arr - gt| averaged over RGB as a heat map (inferno: black 0 to yellow ``ERROR_MAX``), and the mean absolute error."""
    import matplotlib

    err = np.abs(arr - gt).mean(axis=2)
    rgb = matplotlib.colormaps["inferno"](np.clip(err / ERROR_MAX, 0, 1))[..., :3]
    return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)), float(err.mean())


def _load(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    try:
        arr = load_image(path).numpy().transpose(1, 2, 0)
    except ImageReadError:
        return None
    if arr.shape[1::-1] != size:
        arr = np.asarray(Image.fromarray((arr * 255 + 0.5).astype(np.uint8)).resize(size, Image.BICUBIC)) / 255.0
    return arr


def _href(path: Path, root: Path) -> str | None:
    """``path`` relative to the results folder (where the report lives); None for files outside it, whose
    links would break once the folder is copied or zipped."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _cell(label: str, path: Path, arr: np.ndarray, box: tuple[int, int, int, int], root: Path, width: int,
          gt: np.ndarray | None) -> Cell:
    img = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
    size = img.size
    height = max(1, round(width * (box[3] - box[1]) / (box[2] - box[0])))
    crop = img.crop(box).resize((width, height), Image.NEAREST)
    thumb = img.resize((width, max(1, round(width * size[1] / size[0]))), Image.BICUBIC)
    scale = width / size[0]
    ImageDraw.Draw(thumb).rectangle([round(c * scale) for c in box], outline=BOX_COLOUR, width=2)
    error, mae = None, None
    if gt is not None and label != "ground truth":
        heat, mae = error_image(arr, gt)
        error = _b64(heat.resize(thumb.size, Image.BILINEAR))
    return Cell(label, path, _href(path, root), _b64(thumb), _b64(crop), error, mae)


def _disagreement(res: Results, dataset: str, systems: list[str]) -> list[str]:
    """Images sorted by the spread of a full-reference (else any) metric across systems, largest first."""
    scores = res.scores[(res.scores["dataset"] == dataset) & res.scores["system"].isin(systems)]
    if scores.empty:
        return []
    fr = [m for m, i in res.metric_info.items() if i.get("mode") == "FR" and m in set(scores["metric"])]
    metric = fr[0] if fr else scores["metric"].iloc[0]
    per = scores[scores["metric"] == metric].groupby(["image", "system"])["value"].mean()
    spread = per.groupby("image").std().fillna(0)
    return list(spread.sort_values(ascending=False, kind="stable").index)


def _test_dirs(res: Results, dataset: str) -> tuple[Path | None, Path | None]:
    """The dataset's test inputs and ground truth: from a scores sidecar, else ``datasets/data/<dataset>/test``
    beside the results folder."""
    meta = next((m for (s, d), m in res.sidecars.items() if d == dataset and m.get("inputs_dir")), {})
    found = []
    for key, sub in (("inputs_dir", "input"), ("gt_dir", "gt")):
        candidates = [Path(meta[key]), res.root.parent / meta[key]] if meta.get(key) else []
        candidates.append(res.root.parent / "datasets" / "data" / dataset / "test" / sub)
        found.append(next((c for c in candidates if c.is_dir()), None))
    return found[0], found[1]


def output_dir(root: Path, system: str, dataset: str) -> tuple[Path, int | None]:
    """Where a system's enhanced images of ``dataset`` are: ``enhanced/<system>/seed-<k>/<dataset>`` (the
    lowest seed) or ``enhanced/<system>/<dataset>``; and that seed."""
    base = System.parse(system)
    folder = base.enhanced_dir(root, dataset).parent
    seeds = sorted(int(p.name[5:]) for p in folder.glob("seed-*") if p.name[5:].isdigit() and (p / dataset).is_dir())
    if seeds and base.source == "trained":
        return System.trained(base.method, base.regime, seeds[0]).enhanced_dir(root, dataset), seeds[0]
    return base.enhanced_dir(root, dataset), None


def scenes(inputs: Path | None) -> dict[str, str]:
    """``scenes.json`` (test image stem -> scene id) of the dataset whose test inputs are ``inputs``
    (``<dataset>/test/input`` or ``<dataset>/input``); {} where there is none."""
    if inputs is None:
        return {}
    root = inputs.parent.parent if inputs.parent.name == "test" else inputs.parent
    try:
        data = json.loads((root / "scenes.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def build_grids(res: Results, dataset: str, report_dir: Path, *, n_images: int | None = None,
                width: int = THUMB_WIDTH, crop_fraction: float = 0.25) -> list[GridRow]:
    """Rows of cells for the test images (``n_images`` at most, those the systems disagree on most first)."""
    systems = [s for s in res.systems(dataset) if s != "input"]
    inputs, gt_dir = _test_dirs(res, dataset)
    scene_of = scenes(inputs)
    outputs_dirs = {s: output_dir(res.root, s, dataset) for s in systems}
    rows = []
    for stem in _disagreement(res, dataset, systems)[:n_images]:
        src = _find(inputs, stem)
        outputs = [(s + "".join(f" ({t})" for t in (None if seed is None else f"seed {seed}",
                                                     "flagged" if res.flags(dataset, s) else None) if t),
                    folder / f"{stem}.png") for s, (folder, seed) in outputs_dirs.items()]
        outputs = [(s, p) for s, p in outputs if p.is_file()]
        if src is None or not outputs:
            continue
        try:
            first = load_image(outputs[0][1]).numpy().transpose(1, 2, 0)
        except ImageReadError:
            continue
        size = first.shape[1::-1]
        gt_path = _find(gt_dir, stem)
        columns = [("input", src), *outputs] + ([("ground truth", gt_path)] if gt_path else [])
        arrays = {label: a for label, p in columns if (a := _load(p, size)) is not None}
        gt = arrays.get("ground truth")
        reference = gt if gt is not None else np.mean([a for lab, a in arrays.items() if lab != "input"], axis=0)
        avoid = [a for a in (gt, arrays.get("input")) if a is not None]
        box = detail_box(reference, round(min(size) * crop_fraction), avoid)
        fit = min(width, PAGE_WIDTH // len(columns) - 12)
        cells = [_cell(label, p, arrays[label], box, report_dir, fit, gt) for label, p in columns if label in arrays]
        for c in cells:
            c.flagged = c.label.endswith("(flagged)")
        rows.append(GridRow(dataset, stem, box, cells, scene_of.get(stem)))
    return rows


def grid_figure(rows: list[GridRow], out: Path) -> Path | None:
    """One PNG of the grids (thumbnail over crop over error map per column) for the Markdown report."""
    if not rows:
        return None

    def dec(b64: str | None) -> Image.Image | None:
        return Image.open(io.BytesIO(base64.b64decode(b64))) if b64 else None

    decode = [[[dec(c.thumb), dec(c.crop), dec(c.error)] for c in r.cells] for r in rows]
    col_w = max(parts[0].width for row in decode for parts in row)
    row_h = [max(sum(p.height for p in parts if p) for parts in row) + 22 for row in decode]
    ncols = max(len(r) for r in decode)
    canvas = Image.new("RGB", (ncols * (col_w + 6), sum(row_h)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for row, grid_row, height in zip(decode, rows, row_h):
        for j, (parts, cell) in enumerate(zip(row, grid_row.cells)):
            x = j * (col_w + 6)
            draw.text((x + 2, y + 4), f"{cell.label} ({grid_row.image})" if j == 0 else cell.label,
                      fill="#999999" if cell.flagged else "black")
            top = y + 20
            for part in parts:
                if part is not None:
                    canvas.paste(part, (x, top))
                    top += part.height
        y += height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
