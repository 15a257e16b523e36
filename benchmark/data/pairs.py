"""Duplicate removal and input/ground-truth matching by file stem.

Known upstream problems handled here: duplicate copies named like ``0152(2).png`` (BAID test; one
copy per stem is kept: the plain name, else ``(1)``, else the lowest number), upper-case extensions
(``.JPG``), and ground truth with another extension or letter case than its input.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from backlit_core.image_io import list_images
from benchmark.data.errors import DatasetError
from benchmark.data.folder import test_folders

log = logging.getLogger("benchmark.data")
_COPY_RE = re.compile(r"^(?P<base>.*?)\s*\((?P<n>\d+)\)$")


def stem_key(path: Path) -> tuple[str, int]:
    """(case-folded stem without a trailing ``(n)`` copy number, n or 0)."""
    m = _COPY_RE.match(path.stem)
    if m and m.group("base"):
        return m.group("base").casefold(), int(m.group("n"))
    return path.stem.casefold(), 0


def dedupe(files: list[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """Keep one file per stem key; return (kept, [(dropped, kept instead)])."""
    best: dict[str, Path] = {}
    for f in sorted(files, key=lambda p: (stem_key(p)[1] != 0, stem_key(p)[1] != 1, stem_key(p)[1], p.name)):
        best.setdefault(stem_key(f)[0], f)
    kept = sorted(best.values(), key=lambda p: p.name)
    dropped = [(f, best[stem_key(f)[0]]) for f in files if best[stem_key(f)[0]] != f]
    return kept, dropped


@dataclass
class PairReport:
    """Inputs matched with ground truth, and everything that did not fit."""

    pairs: list[tuple[Path, Path | None]] = field(default_factory=list)
    dropped: list[tuple[Path, Path]] = field(default_factory=list)  # (duplicate dropped, copy kept)
    missing_gt: list[Path] = field(default_factory=list)
    orphan_gt: list[Path] = field(default_factory=list)  # ground truth without an input

    def problems(self) -> list[str]:
        out = [f"dropped duplicate {d.name} (kept {k.name})" for d, k in self.dropped]
        out += [f"no ground truth for {p.name} (scored without full-reference metrics)" for p in self.missing_gt]
        out += [f"ground truth {p.name} has no input (ignored)" for p in self.orphan_gt]
        return out

    def as_dict(self) -> dict[str, list[str]]:
        return {"dropped_duplicates": [f"{d.name} -> kept {k.name}" for d, k in self.dropped],
                "missing_gt": [p.name for p in self.missing_gt], "orphan_gt": [p.name for p in self.orphan_gt]}


def match(inputs: list[Path], gts: list[Path] | None) -> PairReport:
    """Dedupe both sides and pair by stem key; ``gts=None`` means the dataset has no ground truth."""
    kept, dropped = dedupe(inputs)
    report = PairReport(dropped=dropped)
    if gts is None:
        report.pairs = [(p, None) for p in kept]
        return report
    gt_kept, gt_dropped = dedupe(gts)
    report.dropped += gt_dropped
    by_key = {stem_key(g)[0]: g for g in gt_kept}
    used: set[Path] = set()
    for p in kept:
        gt = by_key.get(stem_key(p)[0])
        report.pairs.append((p, gt))
        if gt is None:
            report.missing_gt.append(p)
        else:
            used.add(gt)
    report.orphan_gt = [g for g in gt_kept if g not in used]
    return report


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: cannot read image header ({exc})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def size_mismatch(inp: Path, gt: Path) -> str | None:
    """``size mismatch: <input> is WxH but its ground truth <gt> is WxH`` when the two differ (read from the
    headers; :class:`DatasetError` when one cannot be read), else None."""
    a, b = image_size(inp), image_size(gt)
    if a == b:
        return None
    return f"size mismatch: {inp} is {a[0]}x{a[1]} but its ground truth {gt} is {b[0]}x{b[1]} (width x height)"


def test_pairs(dataset: str | Path, check_sizes: bool = True) -> list[tuple[Path, Path | None]]:
    """``[(input, gt or None)]`` of a dataset folder (any layout of :mod:`benchmark.data.folder`); problems are
    logged; size mismatches raise.

    A missing ground truth leaves that input with ``None`` (it still gets no-reference scores).
    Input and ground truth of different sizes raise :class:`DatasetError` naming both files: no
    resizing is done, since the metrics would then measure the resize.
    """
    dataset = Path(dataset)
    inputs, gt_dir = test_folders(dataset)
    report = match(list_images(inputs), list_images(gt_dir) if gt_dir is not None else None)
    for line in report.problems():
        log.warning("%s: %s", dataset.name, line)
    if check_sizes:
        for inp, gt in report.pairs:
            problem = size_mismatch(inp, gt) if gt is not None else None
            if problem:
                raise DatasetError(f"{problem}; fix or remove the pair")
    return report.pairs


test_pairs.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name
