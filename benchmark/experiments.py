"""Experiments run through DVC's queue, gathered from ``dvc exp show --json`` into one long table.

Each experiment (``dvc exp run --queue -S seeds=[3]`` ...) runs the whole pipeline in its own
workspace and records its ``params.yaml`` and ``results/metrics.json``; this module flattens them
to rows ``experiment, rev, changed_params, key, value`` (``key`` is the metrics file and the path in
it, e.g. ``results/metrics.json/synthetic-backlit/rave-unpaired/psnr``, the mean) for ``results/experiments.csv`` and the report.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

COLUMNS = ["experiment", "rev", "changed_params", "key", "value"]


def exp_show(project: Path) -> list:
    """The parsed output of ``dvc exp show --json`` in ``project``."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    done = subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"`dvc exp show --json` failed in {project}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout or "[]")


def _records(node: object) -> Iterator[dict]:
    """Every ``{rev, name, data}`` record of the exp-show tree (baseline commits and experiments)."""
    if isinstance(node, list):
        for item in node:
            yield from _records(item)
    elif isinstance(node, dict):
        if "rev" in node and isinstance(node.get("data"), dict):
            yield node
        for key in ("experiments", "revs"):
            yield from _records(node.get(key) or [])


def _files_data(section: object) -> dict:
    """``{file: {data: {...}}}`` -> one merged dict of the files' data."""
    merged: dict = {}
    for entry in (section or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
            merged.update(entry["data"])
    return merged


def _flatten(data: object, prefix: str = "", sep: str = "/") -> Iterator[tuple[str, object]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep)
    else:
        yield prefix, data


def experiments_frame(exp_json: list) -> pd.DataFrame:
    """Long table of every record's numeric metrics, with the params that differ from the workspace."""
    records = list(_records(exp_json))
    base = next((r for r in records if r["rev"] == "workspace"), records[0] if records else None)
    base_params = dict(_flatten(_files_data(base["data"].get("params")), sep=".")) if base else {}
    rows = []
    for rec in records:
        if rec["rev"] == "workspace":
            continue
        params = dict(_flatten(_files_data(rec["data"].get("params")), sep="."))  # as `-S` names them
        changed = "; ".join(f"{k}={v}" for k, v in sorted(params.items()) if base_params.get(k) != v)
        name = rec.get("name") or rec["rev"][:7]
        metrics = {f: e["data"] for f, e in (rec["data"].get("metrics") or {}).items() if isinstance(e, dict)
                   and isinstance(e.get("data"), dict)}  # one metrics file's keys never shadow another's
        for key, value in _flatten(metrics):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append({"experiment": name, "rev": rec["rev"], "changed_params": changed, "key": key,
                             "value": float(value)})
    return pd.DataFrame(rows, columns=COLUMNS)


def gather(project: Path, out_csv: Path) -> pd.DataFrame:
    """``dvc exp show`` of ``project`` -> ``out_csv`` (the report shows it when present)."""
    from backlit_core.atomic import atomic_path

    frame = experiments_frame(exp_show(project))
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
