"""``results/timing/pipeline.json``: which worker ran each stage of the last ``bench repro``, from when to when.

Written after every change of a stage's state, so the report stage (the last one) draws the stages before it.
No stage depends on it and none outputs it: ``.dvcignore`` hides it from DVC, so it does not change the report
stage's ``results/timing`` dependency.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from backlit_core.atomic import read_json, write_json

PIPELINE_TIMING = Path("timing") / "pipeline.json"  # under the results folder


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def seconds_since(start_iso: str, iso: str) -> float:
    return (datetime.fromisoformat(iso) - datetime.fromisoformat(start_iso)).total_seconds()


@dataclass
class Timeline:
    """The stages of one run: every attempt (worker, start), and the last attempt's worker, start and end."""

    path: Path
    scheduler: str
    workers: int
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stages: dict[str, dict] = field(default_factory=dict)

    def attempt(self, stage: str, event: dict) -> int:
        """Record an attempt's start (a Dask worker event); returns the attempt count so far."""
        rec = self.stages.setdefault(stage, {"stage": stage, "status": "running", "attempts": []})
        rec["attempts"].append({"worker": event["worker_name"], "address": event["address"], "host": event["host"],
                                "start": _iso(event["start"])})
        self.write()
        return len(rec["attempts"])

    def finish(self, stage: str, status: str, result: dict | None = None, log: str | None = None) -> None:
        rec = self.stages.setdefault(stage, {"stage": stage, "attempts": []})
        rec["status"] = status
        if result:
            rec.update(worker=result["worker_name"], address=result["address"], host=result["host"], start=_iso(result["start"]),
                       end=_iso(result["end"]), seconds=round(result["end"] - result["start"], 3))
        if log:
            rec["log"] = log
        self.write()

    def close(self) -> None:
        self.finished = time.time()
        self.write()

    def write(self) -> None:
        """Rewrite the file; a run that ran nothing leaves the last one."""
        if not self.stages:
            return
        write_json(self.path, {"scheduler": self.scheduler, "workers": self.workers, "started": _iso(self.started),
                               "finished": _iso(self.finished), "stages": list(self.stages.values())})


def read_timeline(results: Path) -> dict:
    """The last run's record (``{}`` when there is none)."""
    return read_json(results / PIPELINE_TIMING)
