"""perf/gpu_check.py runs in CI as ``--device cpu --tiny``: every step, the GPU-only paths validated on the CPU,
and perf/gpu_check.sh's set-up logic (Python choice, wheels installed from a folder, the CUDA guard)."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT, WRAPPER = ROOT / "perf" / "gpu_check.py", ROOT / "perf" / "gpu_check.sh"
PAPER_METHODS = ("clip-lit", "latent-prompt", "rave", "rave-shifted", "zero-dce")
# Its tiny CPU run takes 10-30 minutes on a 2-core machine: `make test-slow`, not the default suite.
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", **extra}


@pytest.fixture(scope="module")
def gpu_check() -> object:
    """perf/gpu_check.py as a module."""
    sys.path.insert(0, str(ROOT / "perf"))
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny CPU run of the whole check (a generous budget: the steps' caps scale with it)."""
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out),
                           "--budget-s", "1800"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text())


def test_every_step_ran_and_the_record_names_the_machine(record: dict) -> None:
    assert record["finished"] is True
    assert {k: v["status"] for k, v in record["steps"].items()} == dict.fromkeys(
        ("paths", "train", "compare", "fullsize", "inference", "dask"), "ok")
    assert record["environment"]["cpu"] and record["environment"]["torch"]
    assert record["device"]["device"] == "cpu" and "driver" not in record["device"]
    assert len(record["source_sha256"]) == 64 and "git_commit" in record["provenance"]
    assert 0 < record["wall_s"] < record["settings"]["budget_s"]


def test_every_method_trained_and_its_loss_fell(record: dict) -> None:
    runs = record["steps"]["train"]["result"]["runs"]
    assert set(runs) == {"clip-lit/identity-fp16", "latent-prompt/identity-fp16", "rave/identity-fp16",
                         "rave-shifted/identity-fp16", "zero-dce"}
    for key, run in runs.items():
        assert run["status"] == "done", (key, run)
        assert all(s > 0 for s in run["s_per_iter"].values()) and run["s_per_iter_overall"] > 0
        assert run["loss"]["fell"], (key, run["loss"], run["losses"])
        assert run["loss"]["last"] < run["loss"]["first"]
        assert "peak_gpu_memory_gib" not in run and run["peak_rss_gib"] > 0
    sizes = record["settings"]["sizes"]
    assert runs["clip-lit/identity-fp16"]["iterations"] == {"total": sum(sizes["phases"].values()), **{
        ph: sizes["phases"][f"{k}_iters"] for ph, k in (("ce_init", "ce"), ("warmup", "warmup"),
                                                       ("enhance", "enhancer"), ("prompt", "prompt"))}}
    assert runs["clip-lit/identity-fp16"]["identity_precision"] == "fp32"  # fp16 identity: CUDA only
    assert "fp16 identity encoder is used on CUDA only" in record["steps"]["train"]["result"]["not_run"]["fp32"]


def test_cpu_and_device_runs_agree_exactly_on_one_cpu(record: dict) -> None:
    result = record["steps"]["compare"]["result"]
    assert set(result["methods"]) == set(PAPER_METHODS)
    for method, entry in result["methods"].items():
        assert entry["status"] == "done", (method, entry)
        for judged in entry["by_precision"].values():
            assert judged["tolerance"] == "cpu" and judged["within_tolerance"]
            assert judged["loss_max_rel_diff"] == 0 and judged["output_max_abs_diff"] == 0
            assert judged["losses_cpu"] == judged["losses_device"] and len(judged["losses_cpu"]) >= 4
            assert judged["output_rms_movement"] > 0  # the iterations changed the enhancer


def test_gpu_only_paths_are_validated_on_the_cpu(record: dict) -> None:
    paths = record["steps"]["paths"]["result"]
    assert paths["identity_fp16"]["precision_by_device"] == {"cuda": "fp16", "cpu": "fp32"}
    assert paths["identity_fp16"]["compute_dtype"] == "torch.float16"
    dtypes = paths["identity_fp16"]["parameter_dtypes"]
    assert dtypes["Conv2d:float16"] > 0 and dtypes["BatchNorm2d:float32"] > 0  # OpenAI's fp16 layout
    assert all(0 < d < 5e-3 for d in paths["identity_fp16"]["feature_rel_diff_vs_fp32"])
    triton = paths["triton"]
    if triton["imported"]:  # Triton's interpreter runs the kernel on the CPU
        assert triton["kernel"] == "Triton interpreter (CPU)" and triton["within_tolerance"]
        assert triton["max_abs_diff_vs_conv2d"]["fp32"] < 1e-4
    else:
        assert triton["reason"]
    assert paths["engines"] == {"cuda_graph_used": False, "cuda_graph_expected": False, "compiled_built": True,
                                "compiled_run": paths["engines"]["compiled_run"]}
    assert paths["device_cuda_0"].startswith("unavailable: device 'cuda' requested")


def test_inference_engines_match_the_cpu_reference(record: dict) -> None:
    inference = record["steps"]["inference"]["result"]
    assert set(inference["variants"]) == {"reference_fp32_eager", "torch_fp32_graph"}
    for v in inference["variants"].values():
        assert v["ms_per_frame"]["median"] > 0 and v["within_tolerance"]
    assert inference["variants"]["reference_fp32_eager"]["max_abs_diff_vs_cpu_fp32_reference"] == 0
    assert set(inference["not_run"]) == {"torch_tf32_graph", "torch_fp16_graph", "triton_fp16_graph",
                                         "compiled_fp16_graph"}


def test_fullsize_encoders_and_the_extrapolation(record: dict) -> None:
    full = record["steps"]["fullsize"]["result"]
    assert full["archs"] == {"guidance": "tiny-openai-vit", "identity": "tiny-openai-rn"}
    assert full["runs"]["rave/identity-fp16"]["status"] == "done"
    ex = record["extrapolation"]
    assert ex["methods"]["rave"]["source"] == "full-size encoders (random weights)"
    assert ex["methods"]["clip-lit"]["paper_iterations"] == {"ce_init": 8000, "warmup": 1000, "enhance": 68400,
                                                             "prompt": 32000}
    for m in ("clip-lit", "latent-prompt", "rave", "rave-shifted"):
        assert ex["methods"][m]["wall_s_per_run"] > 0 and ex["methods"][m]["runs"] == 6
    assert ex["methods"]["zero-dce"]["wall_s_per_run_per_1000_images"] > 0  # image count not given
    assert ex["all_methods_h_one_device"] is None and "note" in ex


def test_dask_step_says_not_available_without_bench_repro(record: dict) -> None:
    dask = record["steps"]["dask"]["result"]
    assert dask["available"] is False and "bench repro --help" in dask["reason"]


def test_paper_iterations_come_from_the_schedules(gpu_check: object) -> None:
    from methods.registry import METHODS

    for m in ("clip-lit", "latent-prompt", "rave", "rave-shifted"):
        assert sum(gpu_check.paper_iterations(m, None).values()) == METHODS.get(m).paper_total_iters
    assert gpu_check.paper_iterations("rave", None) == {"warmup": 1000, "enhance": 139000}
    assert gpu_check.paper_iterations("zero-dce", 380) == {"train": 200 * 48}
    assert gpu_check.paper_iterations("zero-dce", None) is None


def test_extrapolation_and_card_fits(gpu_check: object) -> None:
    run = {"status": "done", "s_per_iter": {"ce_init": 0.01, "warmup": 0.1, "enhance": 0.2, "prompt": 0.05},
           "peak_gpu_memory_gib": 14.0, "peak_gpu_reserved_gib": 15.5}
    steps = {"fullsize": {"result": {"runs": {"clip-lit/identity-fp16": run}}},
             "train": {"result": {"runs": {"zero-dce": {"status": "done", "s_per_iter": {"train": 0.02},
                                                        "peak_gpu_memory_gib": 2.0, "peak_gpu_reserved_gib": 3.0}}}}}
    ex = gpu_check.extrapolate(steps, ("clip-lit", "zero-dce"), 380, 80.0)
    clip = ex["methods"]["clip-lit"]
    assert clip["wall_s_per_run"] == pytest.approx(8000 * 0.01 + 1000 * 0.1 + 68400 * 0.2 + 32000 * 0.05)
    assert clip["needs_gib"] == 16.5 and clip["fits_24gb"] and not clip["fits_16gb"]
    assert ex["methods"]["zero-dce"]["wall_s_per_run"] == pytest.approx(9600 * 0.02)
    assert ex["all_methods_h_one_device"] == pytest.approx(6 * (clip["wall_s_per_run"] + 192) / 3600)


def test_dask_step_runs_repro_then_verify_when_they_exist(gpu_check: object, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("x\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=project, check=True, capture_output=True)
    bench = tmp_path / "bench.py"  # a stand-in for the bench command: records its calls
    bench.write_text("import sys, pathlib\n"
                     "pathlib.Path('calls.txt').open('a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                     "if sys.argv[1:] == ['verify', '--help']: print('--format [table|json]')\n"
                     "if sys.argv[1:3] == ['verify', '--format']: print('{\"level\": \"envelope\"}')\n")
    out = gpu_check.dask_step(project, [sys.executable, str(bench)], gpu_check.Budget(120), tmp_path / "work")
    assert out["available"] and out["repro"]["returncode"] == 0 and out["verify"]["returncode"] == 0
    assert '"level": "envelope"' in out["verify"]["output_tail"]
    calls = (tmp_path / "work" / "clone" / "calls.txt").read_text().splitlines()
    assert calls == ["repro train --scheduler local --workers 1", "verify --help", "verify --format json"]


def _wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel providing module ``name``."""
    dist = f"{name}-1.0"
    files = {f"{name}.py": b"VALUE = 42\n",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, data in {**files, f"{dist}.dist-info/RECORD": record.encode()}.items():
            zf.writestr(p, data)
    return path


def _wrapper(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(WRAPPER), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_env(PYTHON=sys.executable, **env), check=False)


def test_wrapper_installs_missing_modules_from_carried_wheels(tmp_path: Path) -> None:
    _wheel(tmp_path / "wheels", "gpu_check_probe_mod")
    site = tmp_path / "site"
    done = _wrapper("--dry-run", "--device", "cpu", "--tiny", GPU_CHECK_NEEDS="torch gpu_check_probe_mod",
                    GPU_CHECK_WHEELS=str(tmp_path / "wheels"), GPU_CHECK_SITE=str(site), OUT=str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "installing 1 wheels" in done.stdout and (site / "gpu_check_probe_mod.py").is_file()
    assert f"perf/gpu_check.py --out {tmp_path / 'out'} --device cpu --tiny" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("command: timeout")


def test_wrapper_names_what_is_missing_without_wheels(tmp_path: Path) -> None:
    done = _wrapper("--dry-run", "--device", "cpu", GPU_CHECK_NEEDS="torch gpu_check_absent_mod",
                    GPU_CHECK_WHEELS=str(tmp_path / "none"), GPU_CHECK_SITE=str(tmp_path / "site"))
    assert done.returncode == 3
    assert "lacks: gpu_check_absent_mod" in done.stderr and "--fetch-wheels" in done.stderr


def test_wrapper_refuses_a_gpu_run_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    done = _wrapper("--dry-run", GPU_CHECK_SITE=str(tmp_path / "site"))
    assert done.returncode == 4 and "--device cpu --tiny" in done.stderr
