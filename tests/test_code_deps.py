"""Each DVC stage depends on exactly the code it runs (benchmark/code_deps.py, results/code/).

- statically: a training run's fingerprint holds its own method's code and not another's; the report's
  and evaluation's hold no training loop; dvc.yaml lists no code file by hand, every `bench run-stage`
  stage depends on its fingerprint, and params are per stage (the bootstrap count is the report's only);
- dynamically: running the real `bench run-stage` commands on a tiny project (profiled) executes no
  project function, class or module that is missing from the stage's fingerprint;
- annotations may be skipped because every module defers them.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.code_deps import PACKAGES, fingerprint_files, stage_code, write_fingerprints
from benchmark.data import prepare

ROOT = Path(__file__).resolve().parents[1]
TINY_GENERATOR = {"long_side": 64, "train_crops": 1, "unpaired_crops": 1, "test_crops": 1}


def _files(stage: str, method: str | None = None) -> set[str]:
    return {k.split("::")[0] for k in stage_code(stage, method)}


def _covered(stage: str, method: str | None) -> dict[str, set[str] | None]:
    """path -> the definitions of it in the fingerprint (None: the whole file)."""
    out: dict[str, set[str] | None] = {}
    for key in stage_code(stage, method):
        path, _, names = key.partition("::")
        out[path] = set(names.split(",")) - {""} if "::" in key else None
    return out


def test_training_fingerprint_is_the_methods_own_code() -> None:
    rave, zero_dce = _files("train", "rave"), _files("train", "zero-dce")
    assert {"methods/plugins/rave.py", "methods/guided_training.py", "methods/network.py", "methods/losses.py"} <= rave
    assert not {"methods/plugins/clip_lit.py", "methods/plugins/zero_dce.py", "methods/zero_dce_train.py"} & rave
    assert {"methods/plugins/zero_dce.py", "methods/zero_dce_train.py", "methods/zero_dce.py"} <= zero_dce
    assert not {"methods/guided_training.py", "methods/encoders.py", "methods/clip_encoder.py"} & zero_dce
    assert "methods/plugins/rave.py" in _files("train", "rave-shifted")  # it subclasses RAVE
    for files in (rave, zero_dce):
        assert not any(f.startswith(("benchmark/report/", "benchmark/metrics")) for f in files)


def test_scoring_and_reporting_fingerprints_hold_no_training_loop() -> None:
    for stage in ("evaluate", "report", "enhance", "prepare"):
        assert not {"methods/guided_training.py", "methods/zero_dce_train.py", "methods/encoders.py"} & _files(stage), stage
    assert "load_metrics" in _covered("evaluate", None)["benchmark/metrics.py"]
    assert "load_metrics" not in (_covered("enhance", None).get("benchmark/metrics.py") or set())
    assert "methods/plugins/clahe.py" in _files("enhance", "clahe") and "methods/plugins/clahe.py" not in _files("enhance")


def test_fingerprint_follows_the_code_and_only_it(tmp_path: Path) -> None:
    first = stage_code("train", "zero-dce")
    assert all(len(h) == 64 for h in first.values())
    entry = _covered("train", "zero-dce")["benchmark/commands/pipeline.py"]
    assert entry is not None and "train" in entry and "report" not in entry  # the entry counts by its function
    assert stage_code("train", "zero-dce") == first  # deterministic
    write_fingerprints(tmp_path)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")}
    assert written == set(fingerprint_files())
    data = json.loads((tmp_path / "train" / "rave.json").read_text())
    assert data["stage"] == "train" and data["method"] == "rave" and str(ROOT) not in json.dumps(data)


def test_every_run_stage_command_calls_its_function_of_the_stage_module() -> None:
    from benchmark.code_deps import ENTRY, STAGES, reached, stage_nodes

    for stage in STAGES:
        assert ("benchmark.stages", f"{stage.replace('-', '_')}_stage") in stage_nodes(stage), stage
    assert ("benchmark.stages", "code_stage") in reached({(ENTRY, "code")})


def test_stage_fingerprints_name_the_functions_each_stage_runs() -> None:
    evaluate, enhance = _covered("evaluate", None), _covered("enhance", None)
    assert "evaluate_stage" in evaluate["benchmark/stages.py"] and "evaluate_stage" not in enhance["benchmark/stages.py"]
    assert "train_zero_dce" not in (_covered("train", "rave").get("methods/zero_dce_train.py") or {"absent"})


# Run in a copy of the project: fingerprint every stage, then edit one function's body at a time
# (one statement added) and fingerprint again; print the fingerprint files that changed per edit.
EDIT = """
import ast, json, sys
from benchmark import code_deps as C

def fingerprints():
    for cached in (C.project_modules, C._parsed, C._bindings):
        cached.cache_clear()
    return {rel: C.stage_code(*which) for rel, which in C.fingerprint_files().items()}

before, changed = fingerprints(), {}
for target in sys.argv[1:]:
    path, name = target.split("::")
    file = C.PROJECT_ROOT / path
    text = file.read_text()
    node = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = text.splitlines(keepends=True)
    lines.insert(node.body[0].lineno - 1, " " * node.body[0].col_offset + "edited = True\\n")
    file.write_text("".join(lines))
    after = fingerprints()
    file.write_text(text)
    changed[target] = sorted(k for k in before if before[k] != after[k])
print(json.dumps(changed))
"""

GUIDED = ["train/clip-lit.json", "train/latent-prompt.json", "train/rave-shifted.json", "train/rave.json"]
EDITS = {  # function -> the fingerprint files of exactly the stages that run it
    "methods/zero_dce_train.py::train_zero_dce": ["envelope/zero-dce.json", "train/zero-dce.json"],  # its training only
    "methods/encoders.py::build_effnet_lite0": sorted(GUIDED + [f.replace("train/", "envelope/") for f in GUIDED]),  # reached through the encoder registry's "module:attr" entry
    "benchmark/stats.py::holm": ["report.json"],  # statistics run in the report only
    "benchmark/stages.py::evaluate_stage": ["evaluate.json", "evaluate/clahe.json", "evaluate/gamma.json",
                                            "evaluate/hist-eq.json"],  # not enhance's, which runs the same module
}


def test_editing_one_function_changes_exactly_the_fingerprints_of_the_stages_that_run_it(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", EDIT, *EDITS], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == EDITS


def test_every_module_defers_annotations() -> None:  # why code_deps may skip them
    for path in sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")):
        text = path.read_text()
        if "def " in text:
            assert "from __future__ import annotations" in text, path


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_stages_depend_on_their_fingerprint_not_on_listed_code() -> None:
    for name, stage in _stages().items():
        body = stage.get("do", stage)
        deps = [str(d) for d in body.get("deps", [])]
        if name == "code":
            assert set(deps) == set(PACKAGES)
            continue
        assert body["cmd"].startswith("bench run-stage "), name
        code = [d for d in deps if d.startswith("results/code/")]
        assert len(code) == 1, (name, deps)
        listed = [d for d in deps if d.startswith(tuple(f"{p}/" for p in PACKAGES))]
        assert all(not d.endswith(".py") and "templates" in d for d in listed), (name, listed)
    assert _stages()["train"]["deps"][0] == "results/code/train/${item.method}.json"


def test_each_stage_reads_its_own_params() -> None:
    stages = _stages()
    evaluation = [n for n in stages if n.startswith("evaluate")]
    for name in evaluation:
        params = stages[name].get("do", stages[name])["params"]
        assert params == ["numerics", "evaluate.metrics"], name  # so a new bootstrap count reruns the report only
    assert "evaluate.bootstrap" in stages["report"]["params"]
    computing = [n for n in stages if n.split("-")[0] in ("train", "enhance", "evaluate", "time")]
    assert all("numerics" in stages[n].get("do", stages[n])["params"] for n in computing)  # CPU kernels
    assert not any("numerics" in stages[n].get("do", stages[n]).get("params", []) for n in ("prepare", "report"))
    assert "evaluate" not in stages["train"]["params"] and "schedule" in stages["train"]["params"]


# --- dynamic: what the real commands import -------------------------------------------------------------
RUN = """
import atexit, json, os, sys, threading
ROOTS = tuple(os.path.join(%r, p) + os.sep for p in %r)
seen = set()
def profile(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.startswith(ROOTS):
        seen.add((frame.f_code.co_filename, frame.f_code.co_qualname.split(".")[0]))
sys.setprofile(profile)
threading.setprofile(profile)
atexit.register(lambda: json.dump(sorted(seen), open(os.environ["EXECUTED_OUT"], "w")))
from benchmark.cli import main
sys.argv = ["bench"] + sys.argv[1:]
main()
""" % (str(ROOT), PACKAGES)

COMMANDS = [  # (stage, method of the fingerprint, run-stage arguments)
    ("train", "rave", ["train", "--method", "rave", "--regime", "unpaired", "--seed", "0"]),
    ("train", "zero-dce", ["train", "--method", "zero-dce", "--regime", "unpaired", "--seed", "0"]),
    ("enhance", None, ["enhance", "--system", "rave-unpaired", "--seed", "0", "--dataset", "synthetic-backlit"]),
    ("enhance", "clahe", ["enhance", "--system", "clahe", "--dataset", "synthetic-backlit"]),
    ("evaluate", "clahe", ["evaluate", "--system", "clahe", "--dataset", "synthetic-backlit"]),
    ("evaluate", None, ["evaluate", "--system", "input", "--dataset", "synthetic-backlit"]),
]


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    prepare("synthetic-backlit", root=root / "datasets" / "data", generator=TINY_GENERATOR)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tiny = {"crop": 32, "rank_size": 32, "batch_size": 2, "warmup_iters": 1, "enhancer_iters": 1, "total_iters": 2,
            "checkpoint_every": 1}
    params["train"] = {"rave": tiny, "zero-dce": {"crop": 32, "batch_size": 2, "total_iters": 2, "checkpoint_every": 1}}
    params["evaluate"]["metrics"] = ["psnr"]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.mark.usefixtures("embedding_cache")
@pytest.mark.parametrize("stage, method, args", COMMANDS, ids=[" ".join(c[2][:3]) for c in COMMANDS])
def test_commands_run_only_fingerprinted_code(stage: str, method: str | None, args: list[str],
                                               tiny_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "executed.json"
    env = {**os.environ, "EXECUTED_OUT": str(out), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", RUN, "run-stage", *args], cwd=tiny_project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    covered = _covered(stage, method)

    def functions(path: str) -> set[str]:
        tree = ast.parse((ROOT / path).read_text())
        return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    missing = set()
    for file, name in json.loads(out.read_text()):
        path = Path(file).resolve().relative_to(ROOT).as_posix()
        if path not in covered:
            missing.add(path)
        elif covered[path] is not None and name in functions(path) and name not in covered[path]:
            missing.add(f"{path}::{name}")  # a class body or method counts with the module's top level
    assert not missing, f"{stage} {method}: ran code its fingerprint lacks: {sorted(missing)}"
