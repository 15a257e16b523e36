"""Where the project lives: the checkout root and the ``shared/`` folder beside it (reference files)."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"  # ../shared: reference checkpoints, metric weights
