"""The report: results files -> results/report.md, results/report.html and results/figures/."""
from __future__ import annotations

from typing import Any


def build_report(*args: Any, **kwargs: Any) -> dict:
    """See :func:`benchmark.report.build.build_report` (imported lazily: plots pull in matplotlib)."""
    from benchmark.report.build import build_report as build

    return build(*args, **kwargs)
