"""The `bench` CLI: help everywhere, instant top-level help, did-you-mean, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark.cli import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_top_level_help_does_not_import_torch() -> None:
    code = "import sys; from benchmark.cli import cli; sys.argv=['bench','--help']\ntry: cli()\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_typo_suggests_command() -> None:
    res = CliRunner().invoke(cli, ["enhanse"])
    assert res.exit_code != 0 and "enhance" in res.output


def test_bad_params_give_one_line_error(tmp_path: Path, project_root: Path) -> None:
    text = (project_root / "params.yaml").read_text()
    bad = text.replace("seeds: [0, 1, 2]", "seeds: [0, -3]", 1)
    assert bad != text
    (tmp_path / "params.yaml").write_text(bad)
    proc = subprocess.run([sys.executable, "-m", "benchmark", "profile"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "", "PYTHONPATH": str(project_root)})
    assert proc.returncode == 2
    assert "params.yaml: seeds: must be a non-empty list of distinct non-negative integers, got [0, -3]" in proc.stderr
    assert "Traceback" not in proc.stderr
