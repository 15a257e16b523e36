"""Recognise a user's folder of photos and map it onto the standard layout.

Accepted (folder names in any letter case):

- ``<inputs>/`` [+ ``<ground truth>/``] with inputs named ``low``, ``backlit`` or ``input`` and ground
  truth named ``high``, ``welllit``, ``well-lit`` or ``gt`` -> ``test/input`` [+ ``test/gt``];
- the same pair of folders under ``train/`` and/or ``test/`` (train ground truth ->
  ``train/welllit-paired``; a ``train/welllit-unpaired`` folder is used as is), which includes the
  standard layout itself;
- a flat folder of images -> ``test/input`` (no ground truth).
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.data.errors import DatasetError
from benchmark.data.pairs import images_in

INPUT_NAMES = ("low", "backlit", "input")
GT_NAMES = ("high", "welllit", "well-lit", "welllit-paired", "gt")
_LAYOUTS_HELP = ("low/ [+ high/], backlit/ [+ welllit/], input/ [+ gt/], the same under train/ and test/ "
                 "(the standard layout), or a flat folder of images")


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
    if not found and images_in(folder):
        found = {"test/input": folder}
    if not found:
        raise DatasetError(f"{folder}: no images in a recognised layout; use {_LAYOUTS_HELP}")
    return found


def slug(folder: str | Path) -> str:
    """A dataset name for a folder: its name in lower-case-kebab (``My Photos`` -> ``my-photos``)."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(folder).expanduser().resolve().name.casefold()).strip("-")
    return name or "folder"
