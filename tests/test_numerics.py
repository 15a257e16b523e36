"""CPU numerics modes: chosen before torch loads, checked after it, recorded with every run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from backlit_core.numerics import MODE_ENV, PORTABLE_ENV
from benchmark.params import ParamsError, numerics_setting, validate_params

ROOT = Path(__file__).resolve().parents[1]
needs_avx2 = pytest.mark.skipif(not torch.cpu._is_avx2_supported(), reason="portable numerics need an AVX2 CPU")


def _python(code: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (the numerics are chosen before torch loads)."""
    clean = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV and k != MODE_ENV}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**clean, "PYTHONPATH": str(ROOT), **(env or {})})


@needs_avx2
def test_portable_pins_the_kernels() -> None:
    proc = _python("from backlit_core import numerics; numerics.apply('portable'); import torch, json; "
                   "print(json.dumps(numerics.settings()))")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert {k: got[k] for k in ("mode", "aten_cpu_capability", "mkldnn", "onednn_max_cpu_isa", "mkl_cbwr")} == \
        {"mode": "portable", "aten_cpu_capability": "AVX2", "mkldnn": True, "onednn_max_cpu_isa": "AVX2",
         "mkl_cbwr": "COMPATIBLE"}


def test_native_drops_a_portable_parents_pins_and_keeps_the_users_own() -> None:
    inherited = {**PORTABLE_ENV, MODE_ENV: "portable", "MKL_CBWR": "AUTO"}  # MKL_CBWR: the user's own value
    proc = _python("import os, json; from backlit_core import numerics; numerics.apply('native'); "
                   f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(inherited)!r}}}))", env=inherited)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {**{k: None for k in PORTABLE_ENV}, "MKL_CBWR": "AUTO", MODE_ENV: "native"}


def test_a_mode_chosen_after_torch_loaded_is_refused() -> None:
    proc = _python("import torch; from backlit_core import numerics; numerics.apply('portable')")
    assert proc.returncode != 0
    assert "numerics: portable must be chosen before torch is imported" in proc.stderr


def test_portable_that_did_not_take_effect_is_refused() -> None:
    proc = _python("import torch; from backlit_core import numerics; numerics.settings()", env={MODE_ENV: "portable"})
    assert proc.returncode != 0
    assert "numerics: portable did not take effect" in proc.stderr


def test_params_numerics_is_checked(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with pytest.raises(ParamsError, match="numerics: must be one of native, portable, got 'fast'"):
        validate_params({**params, "numerics": "fast"})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in params.items() if k != "numerics"}))
    assert numerics_setting(path) == "native"
    path.write_text(yaml.safe_dump({**params, "numerics": "portable"}))
    assert numerics_setting(path) == "portable"
    assert numerics_setting(tmp_path / "absent.yaml") is None


@needs_avx2
def test_bench_takes_the_numerics_of_params_yaml(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "numerics": "portable"}))
    proc = _python("from benchmark.cli import main; import sys; sys.argv = ['bench', 'sys-info']; main()", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["numerics"]["mkl_cbwr"] == "COMPATIBLE"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "numerics": "fast"}))
    proc = _python("from benchmark.cli import main; import sys; sys.argv = ['bench', 'sys-info']; main()", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"Error: {Path('params.yaml')}: numerics: must be one of native, portable, "
                                   "got 'fast'")


@needs_avx2
def test_a_portable_training_run_records_its_numerics(tmp_path: Path) -> None:
    code = f"""
from backlit_core import numerics
numerics.apply("portable")
import torch
from backlit_core.image_io import save_png
from methods.train_api import train_method
data = __import__("pathlib").Path({str(tmp_path / "data")!r})
data.mkdir()
g = torch.Generator().manual_seed(0)
for i in range(3):
    save_png(torch.rand(3, 24, 24, generator=g) * 0.3, data / f"{{i}}.png")
train_method("zero-dce", data, None, {str(tmp_path / "run")!r}, iters=2, progress=False,
             overrides={{"crop": 16, "batch_size": 2}})
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert summary["numerics"]["mode"] == provenance["numerics"]["mode"] == "portable"
    assert summary["numerics"]["mkl_cbwr"] == "COMPATIBLE"
    assert provenance["training"]["numerics"] == summary["numerics"]
