"""Mutation score of the modules whose logic decides results: how many small edits of each module
(mutmut's mutants: an operator, a constant, a condition flipped) make its fast tests fail.

``python perf/bench_mutation.py [MODULE ...] [--max-children N]`` (``make mutation``: every module below).
Each module runs in a scratch copy of the working tree, where mutmut is configured (the project's own
pyproject.toml is not touched) to mutate that one file and run only its tests, with the reference data
where it is (``$BACKLIT_BENCH_REFERENCE``). Results: ``perf/results/mutation.json``, per module the
mutants, killed (a test failed, or timed out: counted apart too), survived (each with its diff), not covered by the tests,
the score (killed / (mutants - equivalent - not reachable here)), the tests run and the commit; modules run
earlier are kept.
A survivor that no test can kill (an equivalent mutant) is listed in ``EQUIVALENT``, one whose code no test run
here can reach (CUDA-only lines) in ``NOT_REACHABLE``, each with the reason. A large
module is measured on a sample of its functions (``Target.functions``, recorded with the result): its property
tests take seconds per mutant on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from _common import RESULTS, ROOT, perf_environment


@dataclass(frozen=True)
class Target:
    """A module's fast tests (the `slow` ones are left out by pyproject's addopts), and for a large module
    the functions whose mutants are tested (a sample; none named: every function)."""

    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    def patterns(self, module: str) -> list[str]:
        dotted = module.removesuffix(".py").replace("/", ".")
        return [f"{dotted}.x_{name}__mutmut_*" for name in self.functions]


MODULES: dict[str, Target] = {
    "benchmark/stats.py": Target(("tests/test_stats.py", "tests/test_stats_properties.py"),
                                 ("holm", "t_test", "paired_test", "bootstrap_ci", "critical_t", "scenes_for")),
    "benchmark/health.py": Target(("tests/test_health.py",)),
    "benchmark/verify_reproduction.py": Target(("tests/test_verify.py",)),
    "methods/losses.py": Target(("tests/test_losses.py",)),
    "methods/checkpoint.py": Target(("tests/test_checkpoint.py",)),
    "backlit_core/atomic.py": Target(("tests/test_atomic.py",)),
    "backlit_core/image_io.py": Target(("tests/test_image_io.py",)),
    "benchmark/data/pairs.py": Target(("tests/test_datasets_folder.py",)),
    "benchmark/data/layout.py": Target(("tests/test_layout.py", "tests/test_datasets_folder.py")),
}
# mutant name -> why no test can tell it from the original
_RACE = ("missing_ok matters only when another process removes the temporary between the listing and the unlink, "
         "a race no test can stage without replacing Path.unlink")
EQUIVALENT: dict[str, str] = {
    "backlit_core.atomic.x_remove_stale_temporaries__mutmut_10": _RACE,
    "backlit_core.atomic.x_remove_stale_temporaries__mutmut_11": _RACE,
    **dict.fromkeys([f"benchmark.data.pairs.x_image_size__mutmut_{k}" for k in (5, 7, 9)],
                    "the orientation assumed without an EXIF tag (1, None or 2) counts only if it is 5-8 (transposed)"),
    **dict.fromkeys(["methods.checkpoint.x_capture_rng__mutmut_10", "methods.checkpoint.x_restore_rng__mutmut_10"],
                    "numpy's generator keys (uint32) pass through float64 exactly, so the round trip is the same"),
    **dict.fromkeys([f"methods.losses.x_{f}__mutmut_{k}" for f, k in (
        ("class_mean", 2), ("rave_direction", 2), ("shift_direction", 16), ("shift_direction", 25),
        ("shift_direction", 34), ("shift_direction", 40))],
        "normalising a 1-D vector over all dimensions (dim=None) is normalising it over dim 0"),
    **dict.fromkeys([f"methods.losses.x_{f}__mutmut_{k}" for f, k in (
        ("shift_direction", 6), ("shift_direction", 7), ("prompt_logits", 5), ("prompt_logits", 6),
        ("negative_probability", 8))],
        "on a 2-D tensor dim 1 (F.normalize's default, or +1) is dim -1"),
    "methods.losses.x_identity_loss__mutmut_7": "the zero it starts from takes only dtype and device, the same "
                                                 "for every level",
    "methods.losses.x_psnr_y__mutmut_22": "weights viewed 3x1x1 broadcast against B x 3 x H x W as 1x3x1x1 do",
    **dict.fromkeys([f"benchmark.data.layout.x_replace_dir__mutmut_{k}" for k in (7, 9, 10)],
                    "the folder removed before the refusal always exists there: ignore_errors never acts"),
}
# mutant names (patterns) -> why no test run here can reach the mutated code: left out of the score, listed
_CUDA = "runs only where CUDA is available (the measuring machine has no GPU)"
_FRAMES = "stacklevel picks which caller a warning names; mutmut's trampolines add frames, so under mutmut no test can"
NOT_REACHABLE: dict[str, str] = {
    "methods.checkpoint.x_capture_rng__mutmut_1[678]": _CUDA,
    "methods.checkpoint.x_restore_rng__mutmut_1[4-9]": _CUDA,
    "methods.checkpoint.x_restore_rng__mutmut_20": _CUDA,
    "methods.checkpoint.x_resumable__mutmut_2[69]": _FRAMES,
    "methods.checkpoint.x_resumable__mutmut_3[45]": _FRAMES,
}
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
TARGET = 0.85


def scratch_copy(dst: Path) -> None:
    """The working tree's tracked and unignored files, without the committed results."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for rel in listed:
        src = ROOT / rel
        if rel.startswith(("results/", "perf/results/")) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


def configure(project: Path, module: str, tests: tuple[str, ...]) -> None:
    """Append mutmut's settings for ``module`` to the scratch copy's pyproject.toml."""
    package = module.split("/")[0]
    others = sorted({p.name for p in project.iterdir()} - {package, "mutants", "pyproject.toml", ".git"})
    settings = {"source_paths": [package], "only_mutate": [module], "also_copy": others,
                "pytest_add_cli_args_test_selection": list(tests),
                "pytest_add_cli_args": ["-p", "no:randomly", "-p", "no:cacheprovider", "-x", "-q"],
                "process_isolation": "forkserver"}  # workers forked from a process that ran no torch op (fork-safe)
    lines = ["", "[tool.mutmut]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]
    with open(project / "pyproject.toml", "a") as f:
        f.write("\n".join(lines) + "\n")


def mutant_results(project: Path, module: str, patterns: list[str]) -> dict[str, str]:
    """``{mutant name: status}`` from mutmut's record of ``module`` (the mutants matching ``patterns``, if any)."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((project / "mutants" / f"{module}.meta").read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()
            if not patterns or any(fnmatch(name, p) for p in patterns)}


def show(project: Path, name: str, env: dict[str, str]) -> str:
    """The mutant's diff (the changed lines only)."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=project, env=env, capture_output=True,
                         text=True, check=False).stdout
    return "\n".join(line for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---")))


def run_module(module: str, max_children: int) -> dict:
    target = MODULES[module]
    patterns = target.patterns(module)
    with tempfile.TemporaryDirectory(prefix="bench-mutation-") as tmp:
        project = Path(tmp)
        scratch_copy(project)
        configure(project, module, target.tests)
        env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PYTHONHASHSEED="0")
        env.setdefault("BACKLIT_BENCH_REFERENCE", str(ROOT.parent / "shared" / "reference"))
        env.pop("PYTHONPATH", None)
        start = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *patterns],
                             cwd=project, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        meta = project / "mutants" / f"{module}.meta"
        if not meta.is_file():
            raise SystemExit(f"{module}: mutmut wrote no results (exit {run.returncode}):\n"
                             f"{(run.stdout + run.stderr)[-3000:]}")
        statuses = mutant_results(project, module, patterns)
        survived = {n: show(project, n, env) for n, s in sorted(statuses.items()) if s == "survived"}
        uncovered = sorted(n for n, s in statuses.items() if s == "no tests")
    killed = sum(s in KILLED for s in statuses.values())
    equivalent = {n: EQUIVALENT[n] for n in survived if n in EQUIVALENT}
    unreachable = {n: r for n in survived for p, r in NOT_REACHABLE.items() if fnmatch(n, p)}
    counted = len(statuses) - len(equivalent) - len(unreachable)
    score = killed / counted if counted else None
    return {"tests": list(target.tests), "timeouts": sum(s == "timeout" for s in statuses.values()), "functions": list(target.functions) or "all", "mutants": len(statuses), "killed": killed,
            "survived": {n: d for n, d in survived.items() if n not in equivalent | unreachable},
            "equivalent": equivalent, "not_reachable": unreachable,
            "not_covered": uncovered, "other": sorted(n for n, s in statuses.items()
                                                      if s not in KILLED | {"survived", "no tests"}),
            "score": round(score, 4) if score is not None else None,
            "meets_target": score is not None and score >= TARGET, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"modules to mutate (default: all of {', '.join(MODULES)})")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"not a module measured here: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    out = RESULTS / "mutation.json"
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.setdefault("modules", {})
    doc["target"] = TARGET
    for module in args.modules or list(MODULES):
        print(f"{module}: mutating, tests {' '.join(MODULES[module].tests)}", flush=True)
        result = run_module(module, args.max_children)
        doc["modules"][module] = {**result, "environment": perf_environment()}
        scored = result["mutants"] - len(result["equivalent"]) - len(result["not_reachable"])
        print(f"{module}: {result['killed']}/{scored} killed "
              f"(score {result['score']}), {len(result['survived'])} survived, {len(result['not_covered'])} "
              f"not covered, {result['seconds']} s", flush=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
