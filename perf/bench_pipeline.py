"""Whole-pipeline benchmark: wall time of ``dvc repro``, stage by stage.

``python perf/bench_pipeline.py [--force] [-- DVC_REPRO_ARGS...]``

Runs ``dvc repro`` in the project root, reads its output as it streams and timestamps each
"Running stage '<name>'" line; a stage's time runs from its line to the next stage's (or to the
end), so it includes DVC's own hashing and lock-file work for that stage. Stages DVC skips as
unchanged are listed with 0 s. Results (per stage, per stage family such as ``train``, total):
perf/results/pipeline.json. The command's output is echoed as it runs.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import defaultdict

from _common import ROOT, perf_environment, write_result

RUNNING = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="pass --force to dvc repro (re-run every stage)")
    ap.add_argument("dvc_args", nargs="*", help="extra arguments for dvc repro (targets, --pull, ...)")
    args = ap.parse_args()
    cmd = ["dvc", "repro", *(["--force"] if args.force else []), *args.dvc_args]
    env_before = perf_environment()
    stages: list[dict] = []
    current: dict | None = None
    t_start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - t_start
            sys.stdout.write(line)
            if m := RUNNING.search(line):
                if current is not None:
                    current["seconds"] = round(now - current["start_s"], 3)
                current = {"stage": m.group(1), "status": "ran", "start_s": round(now, 3)}
                stages.append(current)
            elif m := SKIPPED.search(line):
                stages.append({"stage": m.group(1), "status": "skipped", "start_s": round(now, 3), "seconds": 0.0})
        returncode = proc.wait()
    total = time.perf_counter() - t_start
    if current is not None:
        current["seconds"] = round(total - current["start_s"], 3)
    families: dict[str, float] = defaultdict(float)
    for s in stages:
        families[s["stage"].split("@")[0]] += s["seconds"]
    record = {
        "environment": env_before, "after_load_average": perf_environment()["load_average"], "command": " ".join(cmd),
        "returncode": returncode, "total_s": round(total, 3), "stages": stages,
        "by_family_s": {k: round(v, 3) for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
    }
    print(f"wrote {write_result('pipeline', record)}")
    for name, secs in record["by_family_s"].items():
        print(f"{name:20s} {secs:10.1f} s")
    sys.exit(returncode)


if __name__ == "__main__":
    main()
