"""Write files atomically: to a temporary sibling first, then ``os.replace`` onto the target."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target``.

    A crash (or kill) mid-write leaves the old file, or nothing, never a half-written one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path, stem: str | None = None) -> list[Path]:
    """Delete the temporaries a killed :func:`atomic_path` writer left in ``folder`` (of target ``stem``, or all).

    Call it only where no other process is writing the same targets (a stage's own output folder).
    """
    pattern = f".{glob.escape(stem) if stem is not None else '*'}.*.tmp*"
    stale = [p for p in Path(folder).glob(pattern) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json(target: str | Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON object file as a dict; ``{}`` when it is absent, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def save_torch(target: str | Path, obj: Any) -> None:
    """``torch.save`` atomically, byte-identical for equal contents: saving through a file handle
    names the archive's records ``archive/`` instead of after the (random) temporary file name."""
    import torch

    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
