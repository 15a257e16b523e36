"""The paper profile end to end on stand-ins for its downloads and CLIP weights (issue 14 item 4).

A git-tracked copy of the project is switched to the paper profile (`bench profile paper`), and
`dvc exp run` (`dvc repro` of the workspace with `-S` overrides) runs every stage: download
(from a local HTTP server through ``$BACKLIT_BENCH_MIRROR``, checksums from the mirror's
``SHA256SUMS``), prepare, train (CLIP-LIT, latent-prompt, RAVE, rave-shifted, Zero-DCE, both
regimes), enhance (trained, released, operators), evaluate, time-inference and report.

What differs from a real paper run, and nothing else:
- URLs: the mirror serves fixture archives shaped like the real BAID, Backlit300, DIV2K and LSRW
  downloads (tests/fixtures_paper.py) and, for the released enhancers, randomly initialised
  files of the same networks;
- sizes: a few 48x64 images per split; training crops, batches and timing sizes shrunk (`-S`);
- iteration counts: training phases, timing repeats, bootstrap resamples (`-S`);
- CLIP weights: tiny OpenAI-format TorchScript archives (tests/fixtures_clip.py) passed as
  ``clip:tiny-openai-{vit,rn}:<file>`` (`-S encoders.*`): the real ViT-B/32 and RN101 are
  ~600 MB and far too slow for a CPU test;
- `device=cpu` and `seeds=[0]` (the paper profile says cuda and three seeds);
- fewer stages, the same coverage: every dataset is downloaded and prepared (every download
  group), but only BAID is enhanced and scored (`data.test`), and one released enhancer of each
  upstream repository is scored (`released`: the same loader and network serve the other six).
  Every stage family, method x regime and operator still runs: 60 stages instead of 227 (the envelope stages record that the profile leaves the envelope off).
Metrics whose weights are not available offline are reported unavailable with their reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from local_server import Server

from benchmark.engine.clusters import SlurmSettings
from benchmark.weights import RELEASED as WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
METHODS = ("clip-lit", "latent-prompt", "rave", "rave-shifted", "zero-dce")
# Iteration counts and sizes only (plus device and seeds); every other setting is profiles/paper.yaml's.
ITERS = 6
CLIP_GUIDED = {"iters": ITERS, "ce_iters": 2, "warmup_iters": 2, "enhancer_iters": 2, "prompt_iters": 1,
               "checkpoint_every": 3, "crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 2}
TRAIN_OVERRIDES = {m: CLIP_GUIDED for m in METHODS[:-1]} | {
    "zero-dce": {"iters": ITERS, "checkpoint_every": 3, "crop": 32, "batch_size": 2}}
TEST_DATASETS = ["baid"]  # paired ground truth; the other three datasets are prepared, not scored
RELEASED = ["clip-lit", "rave-unpaired", "zero-dce"]  # one per upstream repository (and network)
OVERRIDES = ["device=cpu", "seeds=[0]", "timing.sizes_mp=[0.01]", "timing.repeats=1", "evaluate.bootstrap=20",
             f"data.test=[{','.join(TEST_DATASETS)}]", f"released=[{','.join(RELEASED)}]"] + [
    f"++train.{m}.{k}={v}" for m, values in TRAIN_OVERRIDES.items() for k, v in values.items()]
# CLIP-LIT starts from upstream's released init (clip_lit_start): the enhancer comes from the mirror (clip-lit-init),
# the prompt pair, which has no registry entry, is a stand-in file given by path (``init_prompts``)
PROMPT_PAIR = "init_prompt_pair.pth"

fixtures_clip = pytest.importorskip("fixtures_clip", reason="tests/fixtures_clip.py (tiny OpenAI-format CLIP) missing")
pytestmark = [pytest.mark.skipif(shutil.which("dvc", path=os.path.dirname(sys.executable)) is None
                                 and shutil.which("dvc") is None, reason="dvc is not installed")]  # 60 stages


def _copy_project(dst: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\n")
    for rel in filter(None, tracked):
        src = ROOT / rel
        if rel == "dvc.lock" or rel.startswith(("results/", "datasets/data/")) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


def _env(mirror: str, home: Path) -> dict[str, str]:
    """The stages run the copy's code (PYTHONPATH), so the project root is the copy and its ``../shared``
    does not exist (nor ``$BACKLIT_BENCH_REFERENCE``): released and metric weights come from the mirror or not
    at all."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1",
               BACKLIT_BENCH_MIRROR=mirror, BACKLIT_BENCH_WEIGHTS=str(home / "weights-cache"),
               BACKLIT_BENCH_CACHE=str(home / "cache"), PYTHONPATH=str(home / "project"))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    for var in ("BACKLIT_BENCH_DATA", "BACKLIT_BENCH_PARAMS", "BACKLIT_BENCH_WEIGHTS_MIRRORS",
                "BACKLIT_BENCH_REFERENCE"):
        env.pop(var, None)
    return env


@dataclass(frozen=True)
class PaperRun:
    project: Path
    ran: list[str]  # the stages run, in order
    requests: list[str]  # the URL paths the mirror was asked for
    took: str  # wall and CPU time, and the mean seconds per stage of each family


def _stage_seconds(lines: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Stage -> seconds from its "Running stage" line to the next one (or the end of the run)."""
    starts = [(t, m[1]) for t, line in lines if (m := RUNNING.search(line))]
    return {name: round(nxt - t, 1) for (t, name), nxt in zip(starts, [t for t, _ in starts[1:]] + [end])}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> PaperRun:
    """One `dvc exp run` of the paper profile on the fixtures."""
    from fixtures_paper import mirror_files

    home = tmp_path_factory.mktemp("paper")
    project = home / "project"
    _copy_project(project)
    clip_vit = fixtures_clip.build_openai_jit_clip(home / "clip" / "ViT-B-32.pt", "vit")
    clip_rn = fixtures_clip.build_openai_jit_clip(home / "clip" / "RN101.pt", "rn")
    width = fixtures_clip.tiny_openai_model("vit").token_embedding.embedding_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save({"module.embedding_prompt": torch.randn(2, 77, width)}, home / PROMPT_PAIR)
    server = Server()
    server.files.update(mirror_files())
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    env = _env(server.url, home)
    lines: list[tuple[float, str]] = []
    try:
        for cmd in (["bench", "profile", "paper"], ["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "paper profile"]):
            subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
        sets = [*OVERRIDES, f"++train.clip-lit.init_prompts=../{PROMPT_PAIR}",
                f"encoders.guidance={fixtures_clip.encoder_name(clip_vit, 'vit')}",
                f"encoders.identity={fixtures_clip.encoder_name(clip_rn, 'rn')}"]
        t0, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(["dvc", "exp", "run", *[a for s in sets for a in ("-S", s)]], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watchdog = threading.Timer(3600, proc.kill)
        watchdog.start()
        lines += [(time.monotonic() - t0, line) for line in proc.stdout]
        proc.wait()
        watchdog.cancel()
        end, cpu1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    output = "".join(line for _, line in lines)
    (home / "dvc-exp-run.log").write_text(output)
    assert proc.returncode == 0, output[-10000:]
    seconds = _stage_seconds(lines, end)
    families: dict[str, list[float]] = {}
    for name, s in seconds.items():
        families.setdefault(name.split("@")[0], []).append(s)
    by_family = ", ".join(f"{f} {len(v)} x {sum(v) / len(v):.0f} s" for f, v in sorted(families.items()))
    took = (f"{end:.0f} s wall, {cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime:.0f} s CPU; "
            f"per stage: {by_family}")
    return PaperRun(project, RUNNING.findall(output), list(server.requests), took)


def test_params_differ_from_the_paper_profile_only_where_stated(paper_run: PaperRun) -> None:
    paper = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
    used = yaml.safe_load((paper_run.project / "params.yaml").read_text())
    assert SlurmSettings.from_params(used).walltime == paper["cluster"]["walltime"]  # DVC wrote it unquoted
    used["cluster"] = {**used["cluster"], "walltime": SlurmSettings.from_params(used).walltime}
    changed = {k for k in paper if paper[k] != used.get(k)}
    assert changed == {"device", "seeds", "timing", "evaluate", "train", "encoders", "data", "released"}
    assert used["evaluate"]["metrics"] == paper["evaluate"]["metrics"]
    for m in METHODS:
        stand_in = {"init_prompts": f"../{PROMPT_PAIR}"} if m == "clip-lit" else {}
        assert used["train"][m] == {**(paper["train"][m] or {}), **TRAIN_OVERRIDES[m], **stand_in}
    assert used["data"] == {**paper["data"], "test": TEST_DATASETS} and used["released"] == RELEASED
    assert {k: v for k, v in used.items() if k not in changed} == {k: v for k, v in paper.items() if k not in changed}
    assert used["datasets"] == paper["datasets"] and used["methods"] == list(METHODS)  # all prepared, all trained
    repos = {w.repo for w in WEIGHTS.values() if w.name in paper["released"]}
    assert {WEIGHTS[w].repo for w in RELEASED} == repos and set(RELEASED) <= set(paper["released"])


def test_every_stage_runs(paper_run: PaperRun) -> None:
    used = yaml.safe_load((paper_run.project / "params.yaml").read_text())
    tests, regimes = used["data"]["test"], used["regimes"]
    expected = {f"prepare@{d}" for d in used["datasets"]} | {"code", "time-inference", "report"}
    for m in METHODS:
        for r in regimes:
            expected |= {f"train@{m}-{r}-0", f"envelope@{m}-{r}-0"}  # the envelope: off, recorded as skipped
            expected |= {f"{stage}@{m}-{r}-0-{d}" for stage in ("enhance", "evaluate") for d in tests}
    expected |= {f"{stage}@{w}-{d}" for stage in ("enhance-released", "evaluate-released")
                 for w in used["released"] for d in tests}
    expected |= {f"{stage}@{o}-{d}" for stage in ("enhance-operator", "evaluate-operator")
                 for o in used["operators"] for d in tests}
    expected |= {f"evaluate-input@{d}" for d in tests}
    ran = set(paper_run.ran)
    assert ran == expected, (sorted(expected - ran), sorted(ran - expected))
    assert len(paper_run.ran) == len(expected) == 60
    summary = json.loads((paper_run.project / "results/envelope/rave-unpaired/seed-0/summary.json").read_text())
    assert summary["status"] == "skipped" and "envelope.enabled is false" in summary["reason"]
    print(f"\npaper profile on the fixtures: {len(paper_run.ran)} stages, {paper_run.took}")


def test_every_download_came_from_the_mirror_whole_and_as_served(paper_run: PaperRun) -> None:
    from fixtures_paper import mirror_files

    served = mirror_files()
    data = paper_run.project / "datasets" / "data"
    groups = {"baid": {"clip-lit-test", "rave-baid", "rave-div2k"}, "backlit300": {"clip-lit-test"},
              "lsrw-huawei": {"lsrw"}, "lsrw-nikon": {"lsrw"}}
    for name, expected in groups.items():
        stamp = json.loads((data / name / "prepared.json").read_text())
        assert set(stamp["mirror"]) == expected
        for group in expected:  # the recorded checksums are those of the bytes served, for every file served
            files = {path.split("/")[2]: hashlib.sha256(body).hexdigest() for path, body in served.items()
                     if path.startswith(f"/{group}/") and not path.endswith("/SHA256SUMS")}
            assert stamp["mirror"][group]["files"] == files, (name, group)
            for file, sha in files.items():  # the archive kept in the raw folder is the one served
                assert hashlib.sha256((data / "raw" / group / file).read_bytes()).hexdigest() == sha
    baid = json.loads((data / "baid" / "prepared.json").read_text())
    assert baid["counts"] == {"train/backlit": 4, "train/welllit-paired": 4, "train/welllit-unpaired": 4,
                              "test/input": 2, "test/gt": 2}
    used_groups = set().union(*groups.values())
    fetched = [*RELEASED, "clip-lit-init"]  # the scored ones, and CLIP-LIT's training start
    weights = {f"/weights/{WEIGHTS[w].filename}" for w in fetched}
    wanted = {p for p in served if p.split("/")[1] in used_groups} | weights | {"/weights/SHA256SUMS"}
    assert wanted <= set(paper_run.requests), sorted(wanted - set(paper_run.requests))  # every archive was asked for
    assert {p for p in paper_run.requests if p.startswith("/weights/") and p != "/weights/SHA256SUMS"} == weights
    cache = paper_run.project.parent / "weights-cache"
    for w in fetched:  # the released files in the cache are the served bytes
        assert (cache / w / WEIGHTS[w].filename).read_bytes() == served[f"/weights/{WEIGHTS[w].filename}"]
    leftovers = [p for root in (data / "raw", cache) for p in root.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []  # no partial download anywhere


def test_every_clip_method_trained_with_the_clip_files(paper_run: PaperRun) -> None:
    for m in METHODS:
        for r in ("paired", "unpaired"):
            summary = json.loads((paper_run.project / "results/train" / f"{m}-{r}" / "seed-0" / "train_summary.json")
                                 .read_text())
            assert summary["status"] == "done", (m, r, summary.get("reason"))
            assert summary["iterations"]["total"] == ITERS
            if m != "zero-dce":
                assert summary["encoder"].startswith("clip:tiny-openai-vit:")
                assert summary["identity_encoder"].startswith("clip:tiny-openai-rn:")
            if m == "clip-lit":  # upstream's default start: the released init files, no CE or warm-up
                assert summary["start"]["from"] == "released-init", summary["start"]
                assert summary["start"]["enhancer"]["file"] == "init_enhancement_model.pth"
                assert summary["start"]["prompts"]["file"] == PROMPT_PAIR
                assert {"total", "enhance"} <= set(summary["iterations"]) <= {"total", "enhance", "prompt"}
            elif m != "zero-dce":
                assert summary["start"] == {"from": "scratch"}
    shifted = json.loads((paper_run.project / "results/train/rave-shifted-unpaired/seed-0/train_summary.json")
                         .read_text())
    assert len(shifted["guidance_tokens_top"]) == 15  # the direction was shifted by 15 vocabulary tokens


def test_the_report_lists_every_system(paper_run: PaperRun) -> None:
    used = yaml.safe_load((paper_run.project / "params.yaml").read_text())
    scores = (paper_run.project / "results" / "scores.csv").read_text()
    report = (paper_run.project / "results" / "report.md").read_text()
    systems = ([f"{m}-{r}" for m in METHODS for r in used["regimes"]] + [f"released-{w}" for w in used["released"]]
               + used["operators"] + ["input"])
    for system in systems:
        assert f",{system}," in scores, f"{system}: no scores"
        assert system in report, f"{system}: not in the report"
    for dataset in used["data"]["test"]:
        assert f"{dataset}," in scores
