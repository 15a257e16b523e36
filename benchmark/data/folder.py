"""Recognise a user's folder of photos and map it onto the standard layout: the one detector behind
``bench compare``, ``bench evaluate``, ``bench datasets verify`` and ``bench datasets prepare``.

Accepted (folder names in any letter case): see :data:`LAYOUTS_HELP`. The standard layout itself
(``train/backlit``, ``train/welllit-paired``, ``train/welllit-unpaired``, ``test/input``, ``test/gt``)
is one case of it.
"""
from __future__ import annotations

import re
from pathlib import Path

from backlit_core.image_io import list_images
from benchmark.data.errors import DatasetError

INPUT_NAMES = ("low", "backlit", "input")
GT_NAMES = ("high", "welllit", "well-lit", "welllit-paired", "gt", "target")
LAYOUTS_HELP = """\
Accepted folder layouts (names in any letter case; ground truth pairs with its input by file stem):
  DIR/low/ [+ DIR/high/]    inputs [+ ground truth]; inputs may also be named backlit/ or input/,
                            ground truth welllit/, well-lit/, welllit-paired/, gt/ or target/
  DIR/test/low/ [+ high/]   the same under test/ (training data in DIR/train/ beside it)
  DIR/*.jpg                 a flat folder of images: inputs only, no-reference metrics
A dataset name (`bench datasets list`) is a folder prepared in this layout: test/input [+ test/gt]."""
LAYOUTS_SHORT = ("low/ [+ high/], backlit/ [+ welllit/], input/ [+ gt/ or target/], the same under test/ "
                 "(and train/), or a flat folder of images")


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The one sub-folder whose name (case-insensitive) is in ``names``; error when several are."""
    hits = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.casefold() in names] if folder.is_dir() else []
    if len(hits) > 1:
        raise DatasetError(f"{folder}: ambiguous, several of {'/'.join(names)} exist: {', '.join(h.name for h in hits)}")
    return hits[0] if hits else None


def _pair(folder: Path, inp: str, gt: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    low = _child(folder, INPUT_NAMES)
    if low is not None:
        out[inp] = low
        high = _child(folder, GT_NAMES)
        if high is not None:
            out[gt] = high
    return out


def detect(folder: str | Path) -> dict[str, Path]:
    """``{standard target: source folder}`` for a user folder; raise with the accepted layouts."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a directory")
    found: dict[str, Path] = {}
    train, test = _child(folder, ("train",)), _child(folder, ("test",))
    if train is not None:
        found |= _pair(train, "train/backlit", "train/welllit-paired")
        unpaired = _child(train, ("welllit-unpaired",))
        if unpaired is not None:
            found["train/welllit-unpaired"] = unpaired
    if test is not None:
        found |= _pair(test, "test/input", "test/gt")
    found = found or _pair(folder, "test/input", "test/gt")
    if not found and list_images(folder):
        found = {"test/input": folder}
    if not found:
        raise DatasetError(f"{folder}: no images in a recognised layout; use {LAYOUTS_SHORT}")
    return found


def test_folders(folder: str | Path) -> tuple[Path, Path | None]:
    """(test inputs, ground truth or None) of a user folder or a prepared dataset; raise when it has no test
    inputs."""
    found = detect(folder)
    if "test/input" not in found:
        raise DatasetError(f"{folder}: no test images found (only {', '.join(found)}); use {LAYOUTS_SHORT}")
    return found["test/input"], found.get("test/gt")


test_folders.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


def slug(folder: str | Path) -> str:
    """A dataset name for a folder: its name in lower-case-kebab (``My Photos`` -> ``my-photos``)."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(folder).expanduser().resolve().name.casefold()).strip("-")
    return name or "folder"
