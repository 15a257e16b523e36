"""Per-iteration CSV logs, appended and truncated on resume: ``train_log.csv`` (every loss term; no
timings, so it is byte-identical across machines) and the step-time log (seconds, kept apart)."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from backlit_core.atomic import write_text

COLUMNS = ["iter", "phase", "round", "loss", "guidance", "identity", "ce", "rank", "psnr"]
STEP_COLUMNS = ["iter", "phase", "step_s", "wall_s"]


class TrainLog:
    """Appends rows; ``iter`` is 1-based (the row of iteration k is written after step k)."""

    def __init__(self, path: Path, keep_until: int, columns: list[str] = COLUMNS) -> None:
        self.path = path
        self.columns = columns
        self._truncate(keep_until)
        new = not path.is_file() or path.stat().st_size == 0
        self._file = open(path, "a", newline="")  # noqa: SIM115 - kept open for the run, closed by close()
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="raise")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def _truncate(self, keep_until: int) -> None:
        """Drop rows past iteration ``keep_until`` (written after the checkpoint a resume starts from)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("iter", "").isdigit() and int(r["iter"]) <= keep_until]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns, extrasaction="ignore")  # as append() writes: \r\n
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.path, text.getvalue())

    def append(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v


def phase_counts(path: Path) -> tuple[dict[str, int], int]:
    """Iterations per phase in a loss log; and the number of enhancer rounds run."""
    count: dict[str, int] = defaultdict(int)
    rounds: set[str] = set()
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            count[r["phase"]] += 1
            if r["phase"] == "enhance":
                rounds.add(r["round"])
    return dict(count), len(rounds)


def seconds_per_iter(path: Path) -> dict[str, float]:
    """Mean seconds per iteration of each phase in a step-time log (empty if absent)."""
    if not path.is_file():
        return {}
    count: dict[str, int] = defaultdict(int)
    secs: dict[str, float] = defaultdict(float)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            count[r["phase"]] += 1
            secs[r["phase"]] += float(r["step_s"])
    return {p: secs[p] / count[p] for p in count}
