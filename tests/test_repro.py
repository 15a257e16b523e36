"""`bench repro` on a real Dask cluster: the embedded pipeline (reduced: one seed, two methods, a few iterations;
up to training and one enhance stage) in two git-tracked copies, one by `dvc repro`, one by
`bench repro --workers 2 --scheduler local`.

The parallel run writes the same dvc.lock (timing and provenance files differ from run to run: their hashes
are compared only for presence), leaves `dvc status` clean, ran stages at the same time
(results/timing/pipeline.json), and a worker SIGKILLed mid-stage (a `hook` stage that waits for a marker file,
added to both copies) had its stage retried once with nothing half-written recorded. A failing stage stops its
descendants only and a rerun continues (a toy DVC project); two training stages run through a one-node Slurm
started here (skipped, with the reason, where it cannot start); the Slurm job script carries the settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASET = "synthetic-backlit"
METHODS = ("rave", "zero-dce")
TINY = {"rave": {"iters": 6, "ce_iters": 2, "warmup_iters": 2, "enhancer_iters": 2, "crop": 32, "batch_size": 2,
                 "checkpoint_every": 3},
        "zero-dce": {"iters": 6, "crop": 32, "batch_size": 2, "checkpoint_every": 3}}
TARGETS = ["train@rave-unpaired-0", f"enhance@zero-dce-unpaired-0-{DATASET}", "hook"]  # 6 stages with their upstream
HOOK = """\
import os, pathlib, time
marks = pathlib.Path(".hook")
marks.mkdir(exist_ok=True)
(marks / f"attempt-{len(list(marks.glob('attempt-*')))}").write_text(str(os.getpid()))
out = pathlib.Path("hook-out.txt")
out.write_text("half-written")
while not (marks / "go").exists():
    time.sleep(0.2)
out.write_text("complete\\n")
"""
HOOK_STAGE = {"cmd": "python hook.py", "deps": ["hook.py", f"datasets/data/{DATASET}"], "outs": ["hook-out.txt"]}
VARIABLE = ("results/timing/", "results/provenance/")  # wall times, timestamps: differ between any two runs

pytestmark = pytest.mark.skipif(shutil.which("dvc", path=os.path.dirname(sys.executable)) is None
                                and shutil.which("dvc") is None, reason="dvc is not installed")


def _env(project: Path, **extra: str) -> dict[str, str]:
    """The project's own code runs (a toy project has none: this checkout's)."""
    code = project if (project / "benchmark").is_dir() else ROOT
    # DVC orders the stages of a partial `dvc repro TARGETS` through a set when the targets cover under half of
    # the graph, so dvc.lock's order then follows Python's string-hash seed: one seed for every run here.
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(code),
               PYTHONHASHSEED="0", **extra)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    # DVC runs stage commands in $SHELL, else /bin/sh (dash forks the command): CI has no $SHELL, and nor do we.
    for var in ("BACKLIT_BENCH_DATA", "BACKLIT_BENCH_PARAMS", "SHELL"):
        env.pop(var, None)
    return env


def _run(args: list[str], project: Path, timeout: int = 900, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=project, env=_env(project, **extra), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _git_init(project: Path) -> None:
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"] if not (project / ".dvc").exists() else None,
                ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        if cmd:
            subprocess.run(cmd, cwd=project, check=True, capture_output=True, env=_env(project))


def _copy_project(dst: Path) -> Path:
    """A git-tracked copy of the project: reduced params, plus the test's `hook` stage."""
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\n")
    for rel in filter(None, tracked):
        src = ROOT / rel
        if rel == "dvc.lock" or rel.startswith(("results/", "datasets/data/")) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params.update(seeds=[0], methods=list(METHODS), released=["zero-dce"], operators=["gamma"],
                  train={m: {**(params["train"].get(m) or {}), **TINY[m]} for m in METHODS},
                  evaluate={"metrics": ["psnr", "ssim"], "bootstrap": 20})
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pipeline = yaml.safe_load((dst / "dvc.yaml").read_text())
    pipeline["stages"]["hook"] = HOOK_STAGE
    (dst / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (dst / "hook.py").write_text(HOOK)
    _git_init(dst)
    return dst


def _masked_lock(project: Path) -> str:
    """dvc.lock with the hashes of timing and provenance files blanked (each must exist)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if entry["path"].startswith(VARIABLE):
                assert (project / entry["path"]).exists(), entry["path"]
                entry.update(md5="*", size="*")
    return yaml.safe_dump(lock, sort_keys=False)


def _clean(project: Path, targets: list[str]) -> None:
    status = _run(["dvc", "status", "--json", "--with-deps", *targets], project)
    assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout + status.stderr


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"bench repro ended before {path.name} appeared: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout} s"
        time.sleep(0.2)


def _worker_of(pid: int) -> int:
    """The Dask worker process above a stage process."""
    import psutil

    for parent in psutil.Process(pid).parents():
        if " ".join(parent.cmdline()).startswith("dask worker"):  # its process title
            return parent.pid
    raise AssertionError(f"no Dask worker above process {pid}")


def _overlapping(stages: list[dict]) -> list[tuple[str, str]]:
    spans = sorted((s["start"], s["end"], s["stage"]) for s in stages if s.get("end"))
    return [(a[2], b[2]) for i, a in enumerate(spans) for b in spans[i + 1:] if b[0] < a[1]]


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both copies at once: the same code (the code stage hashes it)."""
    return {name: _copy_project(tmp_path_factory.mktemp(name)) for name in ("serial", "parallel")}


@pytest.fixture(scope="module")
def serial(copies: dict[str, Path]) -> dict:
    project = copies["serial"]
    (project / ".hook").mkdir()
    (project / ".hook" / "go").touch()
    done = _run(["dvc", "repro", *TARGETS], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"project": project, "lock": _masked_lock(project)}


@pytest.fixture(scope="module")
def parallel(copies: dict[str, Path]) -> dict:
    """`bench repro --workers 2`, whose `hook` stage's worker is SIGKILLed mid-stage."""
    project = copies["parallel"]
    marks = project / ".hook"
    with open(project.parent / "repro.log", "w+") as log:
        proc = subprocess.Popen(["bench", "repro", *TARGETS, "--workers", "2", "--scheduler", "local"],
                                cwd=project, env=_env(project), stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for(marks / "attempt-0", proc)
            first = int((marks / "attempt-0").read_text())
            worker = _worker_of(first)
            os.kill(worker, signal.SIGKILL)
            _wait_for(marks / "attempt-1", proc)
            import psutil

            first_alive = psutil.pid_exists(first) and psutil.Process(first).status() != psutil.STATUS_ZOMBIE
            (marks / "go").touch()
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
        log.seek(0)
        output = log.read()
    assert proc.returncode == 0, output[-5000:]
    status = _run(["dvc", "status", "--json", "--with-deps", *TARGETS], project)
    ignored = _run(["dvc", "check-ignore", "results/timing/pipeline.json"], project)
    return {"ignored": ignored, "project": project, "output": output, "lock": _masked_lock(project), "status": status,
            "timeline": json.loads((project / "results/timing/pipeline.json").read_text()),
            "killed": worker, "first_alive": first_alive}


def test_parallel_run_writes_the_serial_lock(serial: dict, parallel: dict) -> None:
    assert parallel["lock"] == serial["lock"]
    ran = [s["stage"] for s in parallel["timeline"]["stages"]]
    assert sorted(ran) == sorted(["code", f"prepare@{DATASET}", "train@rave-unpaired-0", "train@zero-dce-unpaired-0",
                                  f"enhance@zero-dce-unpaired-0-{DATASET}", "hook"])


def test_parallel_run_leaves_dvc_status_clean_and_overlaps_stages(parallel: dict) -> None:
    status = parallel["status"]
    assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout + status.stderr
    # DVC does not see the timeline, so it changes no stage's results/timing dependency (the report's).
    assert parallel["ignored"].returncode == 0 and "results/timing/pipeline.json" in parallel["ignored"].stdout
    timeline = parallel["timeline"]
    assert timeline["scheduler"] == "local" and timeline["workers"] == 2 and timeline["finished"]
    stages = timeline["stages"]
    assert all(s["status"] == "done" and s["seconds"] > 0 for s in stages)
    pairs = _overlapping(stages)
    assert [p for p in pairs if "hook" not in p], f"no two pipeline stages ran at once: {stages}"
    assert "queued    train@rave-unpaired-0" in parallel["output"]
    assert re.search(r"done +train@zero-dce-unpaired-0 +in [0-9.]+ s on worker cpu-\d", parallel["output"])


def test_killed_worker_stage_is_retried_once_and_nothing_half_written_recorded(parallel: dict) -> None:
    stages = parallel["timeline"]["stages"]
    assert [s["stage"] for s in stages if len(s["attempts"]) > 1] == ["hook"]  # finished stages are never rerun
    hook = next(s for s in stages if s["stage"] == "hook")
    assert len(hook["attempts"]) == 2
    assert hook["attempts"][0]["address"] != hook["attempts"][1]["address"]
    assert not parallel["first_alive"], "the killed worker's stage process outlived it"
    assert "(attempt 2: the previous worker died)" in parallel["output"]
    lock = yaml.safe_load((parallel["project"] / "dvc.lock").read_text())
    assert lock["stages"]["hook"]["outs"][0]["md5"] == hashlib.md5(b"complete\n").hexdigest()


def test_report_draws_the_timeline_and_says_which_run(parallel: dict, tmp_path: Path) -> None:
    from benchmark.report.build import _pipeline

    results = tmp_path / "results"
    (results / "timing").mkdir(parents=True)
    shutil.copy2(parallel["project"] / "results/timing/pipeline.json", results / "timing" / "pipeline.json")
    drawn = _pipeline(results)
    assert drawn["png"].stat().st_size > 5_000
    assert drawn["caption"].startswith("`bench repro` on 2 local worker(s)")
    assert "6 stages ran, 1 retried after their worker died, 0 failed (an earlier run, finished" in drawn["caption"]
    assert _pipeline(tmp_path / "none") is None


# --- failure handling, on a toy project (seconds per stage) ---

def _toy(folder: Path, stages: dict) -> Path:
    folder.mkdir()
    shutil.copy2(ROOT / "params.yaml", folder / "params.yaml")
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    _git_init(folder)
    return folder


def _writes(out: str, text: str, before: str = "") -> str:
    return f"python -c \"{before}open('{out}', 'w').write('{text}')\""


def test_failed_stage_stops_only_its_descendants_and_a_rerun_continues(tmp_path: Path) -> None:
    fails = "import os, sys; os.path.exists('fixed') or sys.exit('bad input: 7 is not a size'); "
    project = _toy(tmp_path / "toy", {
        "first": {"cmd": _writes("first.txt", "1"), "outs": ["first.txt"]},
        "broken": {"cmd": _writes("broken.txt", "2", fails), "deps": ["first.txt"], "outs": ["broken.txt"]},
        "after": {"cmd": _writes("after.txt", "3"), "deps": ["broken.txt"], "outs": ["after.txt"]},
        "other": {"cmd": _writes("other.txt", "4"), "deps": ["first.txt"], "outs": ["other.txt"]},
    })
    done = _run(["bench", "repro", "--workers", "2"], project, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    log = ".dvc/tmp/repro/broken.log"
    assert f"Error: stage 'broken' failed: exit status 1; log: {log}" in done.stderr
    assert "bad input: 7 is not a size" in (project / log).read_text()
    timeline = json.loads((project / "results/timing/pipeline.json").read_text())["stages"]
    assert {s["stage"]: s["status"] for s in timeline} == {"first": "done", "broken": "failed", "other": "done"}
    assert re.search(r"not run +after +\(after failed broken\)", done.stdout)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert list(lock) == ["first", "other"]  # the finished ones are recorded, in dvc repro's order
    (project / "fixed").touch()
    again = _run(["bench", "repro", "--workers", "2"], project, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"unchanged +first", again.stdout) and re.search(r"unchanged +other", again.stdout)
    assert re.search(r"done +broken", again.stdout) and re.search(r"done +after", again.stdout)
    _clean(project, [])


def test_bad_scheduler_names_the_choices(tmp_path: Path) -> None:
    project = _toy(tmp_path / "toy", {"one": {"cmd": _writes("one.txt", "1"), "outs": ["one.txt"]}})
    done = _run(["bench", "repro", "--scheduler", "slrum"], project, timeout=120)
    assert done.returncode == 2 and "expected local, slurm or a scheduler address" in done.stderr


# --- Slurm ---

@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from slurm_node import start

    node = start(tmp_path_factory.mktemp("slurm"))
    if isinstance(node, str):
        pytest.skip(f"one-node Slurm cannot start here: {node}")
    yield node.env
    node.stop()


@pytest.mark.slow  # a one-node Slurm (slurmctld, slurmd, munge) and two training jobs: `make test-slow`
def test_two_training_stages_run_as_slurm_jobs(parallel: dict, slurm: dict[str, str]) -> None:
    project = parallel["project"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    for method in METHODS:
        params["train"][method]["iters"] += 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    trains = [f"train@{m}-unpaired-0" for m in METHODS]
    done = _run(["bench", "repro", *trains, "--scheduler", "slurm", "--workers", "2", "--cpus-per-job", "1",
                 "--memory", "2GB", "--walltime", "00:15:00"], project, timeout=600, **slurm)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    timeline = json.loads((project / "results/timing/pipeline.json").read_text())
    assert timeline["scheduler"] == "slurm"
    assert sorted(s["stage"] for s in timeline["stages"]) == sorted(trains)
    assert all(s["status"] == "done" and s["worker"].startswith("SLURMCluster-") for s in timeline["stages"])
    _clean(project, trains)
    assert list((project / ".dvc/tmp/repro/slurm").glob("bench-repro-*.out"))  # the jobs' own logs


def test_slurm_job_script_carries_the_settings(tmp_path: Path) -> None:
    from dask_jobqueue import SLURMCluster

    from benchmark.engine.clusters import SlurmSettings

    settings = SlurmSettings.from_params({"cluster": {"partition": "gpu", "gpus_per_job": 2, "cpus_per_job": 8}},
                                         memory="32GB", walltime="24:00:00", account=None)
    with SLURMCluster(**settings.cluster_options(tmp_path)) as cluster:
        script = cluster.job_script()
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH -t 24:00:00", "#SBATCH --gres=gpu:2",
                 f"#SBATCH -o {tmp_path}/bench-repro-%J.out"):
        assert line in script, script
    assert "#SBATCH -A" not in script
    worker = script.strip().splitlines()[-1]
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker")
    assert "--nworkers 2" in worker and "--nthreads 1" in worker and "--resources GPU=1" in worker
    with pytest.raises(ValueError, match="unknown key"):
        SlurmSettings.from_params({"cluster": {"gpus": 1}})


def test_each_worker_of_a_multi_gpu_job_takes_its_own_gpu() -> None:
    from benchmark.engine.worker import gpu_of_worker

    job = ["4", "6"]  # CUDA_VISIBLE_DEVICES of a two-GPU Slurm job
    assert [gpu_of_worker(f"SLURMCluster-3-{k}", {"GPU": 1}, job) for k in (0, 1)] == ["4", "6"]
    assert gpu_of_worker("gpu-1", {"GPU": 1}, ["1"]) is None  # a local worker keeps the one it was given
    assert gpu_of_worker("cpu-2", {}, job) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the stage guard uses Linux's PR_SET_PDEATHSIG")
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_stage_command_and_what_its_shell_forked_die_with_their_worker(shell: str, tmp_path: Path) -> None:
    """dash (/bin/sh, DVC's shell where $SHELL is unset) forks its command; bash may exec it. Either way the
    command must not outlive a SIGKILLed worker, and the guard passes the command's exit status on."""
    import psutil

    if not Path(shell).exists():
        pytest.skip(f"{shell} is absent")
    from benchmark.engine.worker import _guarded

    mark = tmp_path / "pid"
    command = f"{sys.executable} -c 'import os, time; open(\"{mark}\", \"w\").write(str(os.getpid())); time.sleep(300)'"
    run_guarded = ("import subprocess, sys; from benchmark.engine.worker import _guarded; "
                   "subprocess.run(_guarded(sys.argv[1:]))")
    worker = subprocess.Popen([sys.executable, "-c", run_guarded, shell, "-c", command],
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 60
    while not mark.exists() or not mark.read_text():
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    stage = psutil.Process(int(mark.read_text()))
    assert stage.ppid() != worker.pid  # a grandchild of the worker at least
    worker.kill()
    worker.wait()
    _, alive = psutil.wait_procs([stage], timeout=10)
    assert not alive, f"the stage command outlived its worker under {shell}"
    for script, status in (("exit 3", 3), ("kill -9 $$", 137), ("true", 0)):
        assert subprocess.run(_guarded([shell, "-c", script]), check=False).returncode == status
