"""Raw-data links: every table of the report links the CSV or JSON behind it, by a path relative to the
results folder (where report.html lives), so the links work wherever results/ is copied or unzipped."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from backlit_core.atomic import atomic_path
from benchmark.report.tables import Table
from benchmark.results import REPORT_TABLES as FOLDER  # cells of tables that have no file of their own


def _tables(value: object, key: str) -> list[tuple[str, Table]]:
    """Every :class:`Table` in a (nested) template context, with a name from its path there."""
    if isinstance(value, Table):
        return [(key, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _tables(v, f"{key}_{k}" if key else str(k))]
    if isinstance(value, (list, tuple)):
        named = [v for v in value if isinstance(v, dict) and "name" in v]
        if named:
            return [t for v in named for t in _tables(v, f"{key}_{v['name']}")]
        return [t for i, v in enumerate(value) for t in _tables(v, f"{key}_{i}")]
    return []


def _write_rows(root: Path, name: str, headers: list[str], rows: list) -> str:
    path = f"{FOLDER}/{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name.strip('_'))}.csv"
    with atomic_path(root / path) as tmp:
        pd.DataFrame([list(r) for r in rows], columns=headers).to_csv(tmp, index=False)
    return path


def link_tables(context: dict, root: Path) -> None:
    """Set ``source`` on every table of ``context`` that has none, writing its cells to
    ``tables/report/<name>.csv``; the setup rows and the skips likewise (``setup_source``, ``skipped_source``)."""
    shutil.rmtree(root / FOLDER, ignore_errors=True)  # tables of an earlier report
    for key, table in _tables({k: v for k, v in context.items() if k != "b64"}, ""):
        if table.source is None:
            table.source = _write_rows(root, key, table.headers, table.rows)
    context["setup_source"] = _write_rows(root, "setup", ["key", "value"], context["setup"])
    context["skipped_source"] = _write_rows(root, "skipped", ["kind", "what", "reason"],
                                            [[s["kind"], s["what"], s["reason"]] for s in context["skipped"]])
