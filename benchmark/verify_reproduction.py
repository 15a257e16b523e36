"""``bench verify``: rerun the committed pipeline in a scratch clone and judge how closely it reproduces.

Three levels (:mod:`benchmark.envelope`), per output and per metric:
- **exact**: the output's dvc.lock hash, or a metric's per-seed values, are the committed ones;
- **within envelope**: a metric's mean over the committed seeds lies within the committed envelope
  (``results/envelope.json``: seed and numerics spread of trained systems, fixed tolerances for the
  others); an output whose hash differs takes the worst level of its system's metrics, and is never
  exact;
- **outside**: anything else (for data preparation and code fingerprints, any difference).

Outputs that hold timings or machine descriptions (``results/timing``, ``results/provenance``, the report)
are machine-dependent by design and not compared. Before the rerun, :func:`record_checks` checks that the
committed records under results/ are one run of the committed code.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from benchmark.envelope import EXACT, OUTSIDE, WITHIN, judge, system_values, worst
from benchmark.results import ROOT, ResultsFolder, machine_dependent_outputs, system_of_output

MACHINE_DEPENDENT = machine_dependent_outputs()
ENVELOPE = ResultsFolder(ROOT).envelope_file.as_posix()
PROVENANCE, TRAIN_TIMING = (ROOT / "provenance").as_posix(), (ROOT / "timing" / "train").as_posix()
# Families whose outputs must be exact: data and code do not depend on the machine's numerics.
MUST_BE_EXACT = ("prepare", "code")


@dataclass
class Check:
    family: str  # stage family (train, enhance, evaluate-released, ...) or "metric"
    what: str  # stage:path, or dataset/system/metric
    level: str
    detail: str = ""
    system: str | None = None


@dataclass
class Verification:
    checks: list[Check]
    committed_machine: dict
    this_machine: dict
    records: list[str] = field(default_factory=list)  # problems of the committed records (staleness)
    clone: str = ""

    def outside(self) -> list[Check]:
        return [c for c in self.checks if c.level == OUTSIDE]

    def as_dict(self) -> dict:
        return {**asdict(self), "levels": level_counts(self.checks)}


def level_counts(checks: list[Check]) -> dict[str, int]:
    return {lvl: sum(c.level == lvl for c in checks) for lvl in (EXACT, WITHIN, OUTSIDE)}


def lock_outputs(lock_text: str) -> dict[tuple[str, str], str | None]:
    """``{(stage, path): md5}`` of every output a dvc.lock records (machine-dependent ones left out)."""
    lock = yaml.safe_load(lock_text) or {}
    return {(stage, o["path"]): o.get("md5") for stage, info in (lock.get("stages") or {}).items()
            for o in info.get("outs") or [] if not o["path"].startswith(MACHINE_DEPENDENT)}


def metric_checks(envelope: Mapping, rerun_scores) -> list[Check]:
    """One check per committed envelope entry: the rerun's per-seed means against it."""
    rerun = system_values(rerun_scores) if len(rerun_scores) else {}
    checks = []
    for e in envelope.get("entries", []):
        lvl, detail = judge(e, rerun.get((e["dataset"], e["system"], e["metric"]), {}))
        checks.append(Check("metric", f"{e['dataset']}/{e['system']}/{e['metric']}", lvl, detail, e["system"]))
    return checks


def lock_checks(committed: str, rerun: str, system_levels: Mapping[str, str]) -> list[Check]:
    """Each committed output: exact when the rerun's hash is the same; else its system's metric level
    (``outside`` for data, code and outputs of systems without metrics)."""
    ours, theirs = lock_outputs(committed), lock_outputs(rerun)
    checks = []
    for (stage, path), md5 in sorted(ours.items()):
        family = stage.split("@")[0]
        system = system_of_output(Path(path))
        new = theirs.get((stage, path), "missing")
        if new == md5:
            checks.append(Check(family, f"{stage}:{path}", EXACT, "", system))
        elif new == "missing" or family in MUST_BE_EXACT or system not in system_levels:
            checks.append(Check(family, f"{stage}:{path}", OUTSIDE, f"{md5} -> {new}", system))
        else:  # never exact: other bytes with the same metrics are at best within the envelope
            lvl = WITHIN if system_levels[system] == EXACT else system_levels[system]
            checks.append(Check(family, f"{stage}:{path}", lvl,
                                f"hash differs; {system}'s metrics are {system_levels[system]}", system))
    return checks


def judge_rerun(committed_lock: str, rerun_lock: str, envelope: Mapping, rerun_scores) -> list[Check]:
    """Metric checks, then output checks that lean on them."""
    metrics = metric_checks(envelope, rerun_scores)
    by_system: dict[str, list[str]] = {}
    for c in metrics:
        by_system.setdefault(c.system or "", []).append(c.level)
    levels = {s: worst(v) for s, v in by_system.items()}
    return lock_checks(committed_lock, rerun_lock, levels) + metrics


def scratch_clone(project: Path, dest: Path) -> Path:
    """A clone of the committed project (HEAD) at ``dest`` (uncommitted changes are not verified)."""
    subprocess.run(["git", "clone", "-q", str(project), str(dest)], check=True)
    return dest


def run_repro(clone: Path, log: Path) -> int:
    """``dvc repro`` in ``clone`` with the clone's own code, the current environment's tools, and the
    released checkpoints and metric parameter files the original project finds beside it
    (``../shared/reference``)."""
    from benchmark.metrics import WEIGHTS_ENV, metric_weights_dir
    from benchmark.weights import mirror_dirs

    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(clone))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["BACKLIT_BENCH_WEIGHTS_MIRRORS"] = os.pathsep.join(str(d.resolve()) for d in mirror_dirs())
    if (metric_weights := metric_weights_dir()) is not None:  # NIQE/BRISQUE parameters etc.
        env[WEIGHTS_ENV] = str(metric_weights.resolve())
    env.pop("BACKLIT_BENCH_PARAMS", None)
    env.pop("BACKLIT_BENCH_DATA", None)
    with open(log, "w") as f:
        return subprocess.run(["dvc", "repro"], cwd=clone, env=env, stdout=f, stderr=subprocess.STDOUT, check=False).returncode


def committed(project: Path, rel: str) -> str:
    """``rel`` as committed at HEAD ("" when it is not)."""
    out = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=project, capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else ""


def verify(project: Path, workdir: Path | None = None, keep: bool = False) -> Verification:
    """Clone ``project``, ``dvc repro`` there from nothing, and judge the rerun against what is committed."""
    envelope = json.loads(committed(project, ENVELOPE) or "{}")
    if not envelope.get("entries"):
        raise RuntimeError(f"{ENVELOPE} is not committed: nothing to judge the metrics against (run `dvc repro` "
                           "and commit the run first)")
    records = record_checks(project)
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench-verify-"))
    clone = scratch_clone(project, base / "clone")
    log = base / "repro.log"
    code = run_repro(clone, log)
    if code != 0:
        raise RuntimeError(f"dvc repro failed in {clone} (exit {code}); see {log}")
    checks = judge_rerun(committed(project, "dvc.lock"), (clone / "dvc.lock").read_text(), envelope,
                         ResultsFolder(clone / ROOT).all_scores())
    result = Verification(checks, committed_machine(project), this_machine(clone), records, str(clone))
    if not keep and not result.outside():
        shutil.rmtree(clone, ignore_errors=True)
        result.clone = ""
    return result


def committed_machine(project: Path) -> dict:
    """The machine of the committed training runs (their provenance records at HEAD)."""
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", f"{PROVENANCE}/train"], cwd=project,
                             capture_output=True, text=True, check=False).stdout.split()
    for rel in listing:
        if rel.endswith(".json"):
            return machine_of(json.loads(committed(project, rel)))
    return {}


def machine_of(record: Mapping) -> dict:
    """CPU model, threads, torch, device and numerics mode of a provenance record."""
    dev, training = record.get("device") or {}, record.get("training") or {}
    return {"cpu": dev.get("cpu_model") or dev.get("processor"), "threads": training.get("threads"),
            "torch": (record.get("packages") or {}).get("torch"), "device": training.get("device"),
            "numerics": (record.get("numerics") or {}).get("mode", "native"), "gpu": dev.get("cuda_device")}


def this_machine(project: Path) -> dict:
    from backlit_core.provenance import device_info, package_versions
    from benchmark.params import load_params

    params = load_params(project / "params.yaml")
    dev = device_info()
    return {"cpu": dev.get("cpu_model") or dev.get("processor"), "threads": params.get("threads"),
            "torch": package_versions().get("torch"), "device": params.get("device"),
            "numerics": params.get("numerics", "native"), "gpu": dev.get("cuda_device")}


def record_checks(project: Path) -> list[str]:
    """Problems of the committed records under results/: each must come from one run of the committed
    code (one git commit, whose code HEAD still has), and no finished run's timing record may be empty."""
    problems = []
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", ROOT.as_posix()], cwd=project,
                             capture_output=True, text=True, check=False).stdout.split()
    commits: dict[str, list[str]] = {}
    for rel in listing:
        if not rel.endswith(".json"):
            continue
        doc = json.loads(committed(project, rel) or "{}")
        if rel.startswith(f"{PROVENANCE}/") and doc.get("git_commit"):
            commits.setdefault(doc["git_commit"], []).append(rel)
        finished = rel.startswith(f"{TRAIN_TIMING}/") and rel.endswith("train_timing.json") and doc.get("status") not in (
            "skipped", "stopped") and not doc.get("skipped")
        if finished and (not doc.get("wall_s") or not doc.get("s_per_iter")):
            problems.append(f"{rel}: a finished run's timing is empty (wall_s {doc.get('wall_s')}, "
                            f"s/iter {doc.get('s_per_iter')})")
    if len(commits) > 1:
        summary = ", ".join(f"{c[:7]} ({len(files)} records, e.g. {files[0]})" for c, files in sorted(commits.items()))
        problems.append(f"records of {len(commits)} commits under results/provenance: {summary}")
    for commit in commits:
        changed = subprocess.run(["git", "diff", "--name-only", commit, "HEAD", "--", *CODE_PATHS], cwd=project,
                                 capture_output=True, text=True, check=False)
        if changed.returncode != 0:
            problems.append(f"the records' commit {commit[:7]} is not in this repository's history")
        elif changed.stdout.strip():
            first = changed.stdout.split()
            problems.append(f"the code changed since the records' commit {commit[:7]}: {len(first)} files, e.g. "
                            f"{first[0]}")
    return problems


# What a stage's outputs can depend on; docs, README and the committed results themselves are not code.
CODE_PATHS = ("backlit_core", "methods", "benchmark", "dvc.yaml", "params.yaml", "datasets/*.yaml", "pyproject.toml",
              "requirements")
