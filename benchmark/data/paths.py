"""Where cards and data live: ``datasets/*.yaml`` and ``datasets/data/<name>/`` (``$BACKLIT_BENCH_DATA``)."""
from __future__ import annotations

import os
from pathlib import Path

from backlit_core.paths import PROJECT_ROOT

CARDS_DIR = PROJECT_ROOT / "datasets"
RAW = "raw"  # <data root>/raw/<group>/: downloads and user-placed upstream files, shared between cards


def data_root() -> Path:
    """``$BACKLIT_BENCH_DATA`` or ``<project>/datasets/data``."""
    env = os.environ.get("BACKLIT_BENCH_DATA")
    return Path(env).expanduser() if env else PROJECT_ROOT / "datasets" / "data"


def dataset_dir(name: str, root: Path | None = None) -> Path:
    """The standard-layout directory of dataset ``name`` (it may not exist yet)."""
    return Path(root or data_root()) / name


def raw_dir(group: str, root: Path | None = None) -> Path:
    """Folder holding the upstream files of source group ``group``."""
    return Path(root or data_root()) / RAW / group
