"""Materialise any dataset into the standard layout (``train/...``, ``test/...``) under one folder.

Files are hard-linked (copied across file systems) from where they were found; duplicates are
dropped and ground truth is renamed to its input's stem, so every stage can pair by exact stem.
A ``prepared.json`` stamp records what was built and what was dropped; a matching stamp makes
preparation a no-op.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from backlit_core.atomic import write_json
from backlit_core.image_io import list_images
from benchmark.data.cards import PAIRS, TARGETS
from benchmark.data.errors import DatasetError
from benchmark.data.pairs import PairReport, match

STAMP = "prepared.json"
_SKIP_DIRS = {"__macosx", ".git", ".dvc"}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Case-insensitive regex for a ``/``-separated glob where ``**`` spans any number of folders
    (``.`` alone is the root folder)."""
    rx = ""
    for part in (p for p in pattern.split("/") if p not in ("", ".")):
        rx += "(?:[^/]+/)*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "/"
    return re.compile(rx.removesuffix("/"), re.IGNORECASE)


def find_dirs(root: Path, pattern: str, max_depth: int = 8) -> list[Path]:
    """Folders under ``root`` (``root`` itself included) whose relative path matches ``pattern``."""
    rx = _glob_regex(pattern)
    found = []
    for here, dirs, _ in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        dirs[:] = sorted(d for d in dirs if d.casefold() not in _SKIP_DIRS and not d.startswith("."))
        if rel.count("/") >= max_depth:
            dirs[:] = []
        if rx.fullmatch("" if rel == "." else rel):
            found.append(Path(here))
    return found


def subdirs(root: Path, max_depth: int = 3) -> list[str]:
    """Relative folder names under ``root`` (for error messages)."""
    if not root.is_dir():
        return []
    return [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
            if p.is_dir() and len(p.relative_to(root).parts) <= max_depth and not p.name.startswith(".")][:40]


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def materialise(folders: dict[str, Path], dest: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build ``dest`` from ``{target: source folder}``; return the report also saved in the stamp.

    Built in a sibling temporary folder and swapped in at the end, so a crash leaves the old copy.
    """
    unknown = set(folders) - set(TARGETS)
    if unknown:
        raise DatasetError(f"{dest}: unknown layout targets {sorted(unknown)} (valid: {', '.join(TARGETS)})")
    tmp = dest.with_name(f".{dest.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    reports: dict[str, dict[str, list[str]]] = {}
    counts: dict[str, int] = {}
    for inp, gt in PAIRS:
        if inp not in folders:
            continue
        rep: PairReport = match(list_images(folders[inp]), list_images(folders[gt]) if gt in folders else None)
        for src, gt_src in rep.pairs:
            _place(src, tmp / inp / src.name)
            if gt_src is not None:
                _place(gt_src, tmp / gt / f"{src.stem}{gt_src.suffix}")
        counts[inp] = len(rep.pairs)
        if gt in folders:
            counts[gt] = len(rep.pairs) - len(rep.missing_gt)
        reports[inp.split("/")[0]] = rep.as_dict()
    if "train/welllit-unpaired" in folders:
        files = list_images(folders["train/welllit-unpaired"])
        for src in files:
            _place(src, tmp / "train/welllit-unpaired" / src.name)
        counts["train/welllit-unpaired"] = len(files)
    empty = [t for t in folders if counts.get(t, 0) == 0]
    if empty:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{dest.name}: no images for {', '.join(empty)} (looked in "
                           f"{', '.join(str(folders[t]) for t in empty)})")
    report = {"counts": counts, "problems": reports, "sources": {t: os.path.relpath(p, dest.parent) for t, p in folders.items()}, **(extra or {})}
    write_json(tmp / STAMP, report)
    replace_dir(tmp, dest)
    return report


def replace_dir(new: Path, dest: Path) -> None:
    """Swap folder ``new`` into place at ``dest``, removing an old ``dest`` only if it was built here."""
    if dest.is_dir() and any(dest.iterdir()) and not (dest / STAMP).is_file():
        shutil.rmtree(new, ignore_errors=True)
        raise DatasetError(f"{dest}: refusing to replace a non-empty folder that was not prepared by bench "
                           f"(no {STAMP}); move it away or choose another location")
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def read_stamp(dest: Path) -> dict[str, Any] | None:
    try:
        return json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return None
