"""Image grids: input | each system | ground truth, with the same zoomed crop on every column.

The crop box is where the systems disagree most: the window with the largest mean per-pixel
standard deviation of luminance across the systems' outputs.
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmark.image_io import ImageReadError, load_image
from benchmark.report.data import Results

THUMB_WIDTH = 240
PAGE_WIDTH = 1220  # pixels available to one grid row in the HTML report
BOX_COLOUR = (255, 40, 40)


@dataclass
class Cell:
    label: str
    path: Path
    href: str  # link to the full-resolution file, relative to the report
    thumb: str  # base64 JPEG: whole image with the crop box drawn
    crop: str  # base64 JPEG: the crop, enlarged to the thumbnail width


@dataclass
class GridRow:
    dataset: str
    image: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in the input's pixels
    cells: list[Cell]


def _b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _find(folder: Path | None, stem: str) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    return next((p for p in sorted(folder.iterdir()) if p.stem == stem and p.is_file()), None)


def disagreement_box(arrays: list[np.ndarray], size: int) -> tuple[int, int, int, int]:
    """``size`` x ``size`` window (clipped to the image) maximising the mean std across ``arrays`` (H x W x 3)."""
    h, w = arrays[0].shape[:2]
    size = max(1, min(size, h, w))
    if len(arrays) < 2:
        top, left = (h - size) // 2, (w - size) // 2
        return left, top, left + size, top + size
    luma = np.stack([a @ np.array([0.299, 0.587, 0.114]) for a in arrays])
    std = luma.std(axis=0)
    integral = np.pad(std.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(left), int(top), int(left) + size, int(top) + size


def _cell(label: str, path: Path, box: tuple[int, int, int, int], size: tuple[int, int], report_dir: Path,
          width: int) -> Cell | None:
    try:
        arr = load_image(path).numpy().transpose(1, 2, 0)
    except ImageReadError:
        return None
    img = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
    if img.size != size:
        img = img.resize(size, Image.BICUBIC)
    crop = img.crop(box).resize((width, max(1, round(width * (box[3] - box[1]) / (box[2] - box[0])))), Image.NEAREST)
    thumb = img.resize((width, max(1, round(width * size[1] / size[0]))), Image.BICUBIC)
    scale = width / size[0]
    ImageDraw.Draw(thumb).rectangle([round(c * scale) for c in box], outline=BOX_COLOUR, width=2)
    href = os.path.relpath(path.resolve(), report_dir.resolve())
    return Cell(label, path, href, _b64(thumb), _b64(crop))


def _disagreement(res: Results, dataset: str, systems: list[str]) -> list[str]:
    """Images sorted by the spread of a full-reference (else any) metric across systems, largest first."""
    scores = res.scores[(res.scores["dataset"] == dataset) & res.scores["system"].isin(systems)]
    if scores.empty:
        return []
    fr = [m for m, i in res.metric_info.items() if i.get("mode") == "FR" and m in set(scores["metric"])]
    metric = fr[0] if fr else scores["metric"].iloc[0]
    spread = scores[scores["metric"] == metric].groupby("image")["value"].std().fillna(0)
    return list(spread.sort_values(ascending=False, kind="stable").index)


def build_grids(res: Results, dataset: str, report_dir: Path, *, n_images: int = 3, width: int = THUMB_WIDTH,
                crop_fraction: float = 0.25) -> list[GridRow]:
    """Rows of cells for the ``n_images`` images on which the systems disagree most."""
    systems = [s for s in res.systems(dataset) if s != "input"]
    meta = next((m for (s, d), m in res.sidecars.items() if d == dataset and m.get("inputs_dir")), {})
    inputs = Path(meta["inputs_dir"]) if meta.get("inputs_dir") else None
    gt = Path(meta["gt_dir"]) if meta.get("gt_dir") else None
    rows = []
    for stem in _disagreement(res, dataset, systems)[:n_images]:
        src = _find(inputs, stem)
        outputs = [(s, res.root / "enhanced" / s / dataset / f"{stem}.png") for s in systems]
        outputs = [(s, p) for s, p in outputs if p.is_file()]
        if src is None or not outputs:
            continue
        arrays = [load_image(p).numpy().transpose(1, 2, 0) for _, p in outputs]
        h, w = arrays[0].shape[:2]
        arrays = [a for a in arrays if a.shape[:2] == (h, w)]
        box = disagreement_box(arrays, round(min(h, w) * crop_fraction))
        columns = [("input", src), *outputs] + ([("ground truth", g)] if (g := _find(gt, stem)) else [])
        fit = min(width, PAGE_WIDTH // len(columns) - 12)
        cells = [c for label, p in columns if (c := _cell(label, p, box, (w, h), report_dir, fit))]
        rows.append(GridRow(dataset, stem, box, cells))
    return rows


def grid_figure(rows: list[GridRow], out: Path) -> Path | None:
    """One PNG of the grids (thumbnail over crop per column) for the Markdown report."""
    if not rows:
        return None
    decode = [[(Image.open(io.BytesIO(base64.b64decode(c.thumb))), Image.open(io.BytesIO(base64.b64decode(c.crop))))
               for c in r.cells] for r in rows]
    col_w = max(t.width for row in decode for t, _ in row)
    row_h = [max(t.height + c.height for t, c in row) + 22 for row in decode]
    ncols = max(len(r) for r in decode)
    canvas = Image.new("RGB", (ncols * (col_w + 6), sum(row_h)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for row, cells, height in zip(decode, rows, row_h):
        for j, ((thumb, crop), cell) in enumerate(zip(row, cells.cells)):
            x = j * (col_w + 6)
            draw.text((x + 2, y + 4), f"{cell.label} ({cells.image})" if j == 0 else cell.label, fill="black")
            canvas.paste(thumb, (x, y + 20))
            canvas.paste(crop, (x, y + 20 + thumb.height))
        y += height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
