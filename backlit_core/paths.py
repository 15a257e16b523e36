"""Where the project lives: the checkout root, the ``shared/`` folder beside it and the reference data
(released checkpoints, metric parameters, real photos and pairs) that every command and test looks in."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"  # ../shared
REFERENCE_ENV = "BACKLIT_BENCH_REFERENCE"
REFERENCE_DIR = Path(os.environ.get(REFERENCE_ENV) or SHARED_DIR / "reference")  # ../shared/reference by default
