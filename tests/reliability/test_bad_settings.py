"""Bad settings: unknown names list the valid ones with a suggestion; a method that cannot run with
the encoder is skipped with a one-line reason; invalid numbers are refused naming the key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rel_helpers import run_bench

from backlit_core.registry import UnknownNameError
from benchmark.cli import cli
from benchmark.data import load_card
from benchmark.metrics import get_spec
from benchmark.params import ParamsError, validate_params
from benchmark.report.data import load_results
from methods.encoders import ENCODERS
from methods.registry import METHODS
from methods.train_api import train_method


@pytest.mark.parametrize("lookup, typo, suggestion", [
    (METHODS.get, "rav", "rave"), (ENCODERS.get, "effnet-lite", "effnet-lite0"), (get_spec, "psnrr", "psnr"),
    (load_card, "baidd", "baid"),
])
def test_registries_list_valid_names_with_a_suggestion(lookup, typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError) as err:
        lookup(typo)
    msg = str(err.value)
    assert f"did you mean {suggestion!r}?" in msg and "Valid: " in msg and suggestion in msg.split("Valid: ")[1]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("kind", ["method", "encoder", "dataset", "metric", "weights"])
def test_cli_unknown_names_list_valid_names_with_a_suggestion(kind: str, train_data: dict[str, Path], tmp_path: Path,
                                                              checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    train = ["train", "--backlit", str(train_data["backlit"]), "--welllit", str(train_data["welllit"]),
             "--out", str(tmp_path / "run")]
    args, expected, valid = {
        "method": ([*train, "-m", "rav"], "unknown method 'rav'; did you mean 'rave'?", "latent-prompt, rave, rave-shifted, zero-dce"),
        "encoder": ([*train, "-m", "rave", "--encoder", "effnet-lite"], "did you mean 'effnet-lite0'?", "effnet-lite0"),
        "dataset": (["evaluate", "-d", "baidd", "-s", "x", "--results", str(tmp_path / "r")],
                    "unknown dataset 'baidd'; did you mean 'baid'?", "backlit300, baid"),
        "metric": (["evaluate", "-d", str(train_data["backlit"].parent), "-s", "x", "--metrics", "psnr,nique"],
                   "unknown metric 'nique'; did you mean 'niqe'?", "musiq, niqe, piqe, psnr"),
        "weights": (["enhance", "-w", "rave-unpaierd", "-i", str(train_data["backlit"]), "-o", str(tmp_path / "o")],
                    "did you mean 'rave-unpaired'?", "rave-paired, rave-unpaired"),
    }[kind]
    code, err = run_bench(args, monkeypatch, capsys)
    line = _one_error_line(err)
    assert code != 0 and expected in line and valid in line
    assert not (tmp_path / "run").exists()


def test_text_method_with_image_only_encoder_is_skipped_with_reason(train_data: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "results" / "train" / "clip-lit-unpaired"
    summary = train_method("clip-lit", train_data["backlit"], train_data["welllit"], run, encoder="effnet-lite0",
                           progress=False)
    reason = "clip-lit needs a text encoder; effnet-lite0 is image-only (use a clip:<arch>:<weights> encoder)"
    assert summary["status"] == "skipped" and summary["reason"] == reason
    on_disk = json.loads((run / "train_summary.json").read_text())
    assert on_disk["status"] == "skipped" and on_disk["reason"] == reason and "\n" not in reason
    assert not (run / "enhancer.pth").exists() and not (run / "checkpoint.pt").exists()
    skips = load_results(tmp_path / "results", n_boot=10, perf_dir=None).skipped
    assert {"kind": "method", "what": "clip-lit-unpaired (training)", "reason": reason} in skips  # in the report
    res = CliRunner().invoke(cli, ["train", "-m", "clip-lit", "--backlit", str(train_data["backlit"]), "--welllit",
                                   str(train_data["welllit"]), "--out", str(tmp_path / "cli"), "--allow-skip", "-q"])
    assert res.exit_code == 0 and f"clip-lit: skipped: {reason}" in res.output


def _params(**train: dict) -> dict:
    return {"seeds": [0], "data": {"train": "synthetic-backlit", "test": ["synthetic-backlit"]}, "methods": ["rave"],
            "regimes": ["unpaired"], "encoders": {"guidance": "effnet-lite0", "identity": "effnet-lite0"},
            "schedule": "quick", "train": train}


@pytest.mark.parametrize("overrides, key, got", [
    ({"iters": -5}, "train.rave.iters", "-5"), ({"batch_size": 0}, "train.rave.batch_size", "0"),
    ({"enhancer_iters": 0}, "train.rave.enhancer_iters", "0"), ({"crop": 2.5}, "train.rave.crop", "2.5"),
])
def test_invalid_numbers_in_params_name_the_key(overrides: dict, key: str, got: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    validate_params(_params())  # the base is valid
    with pytest.raises(ParamsError, match=rf"params.yaml: {key}: must be a positive integer, got {got}"):
        validate_params(_params(rave=overrides))
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(_params(rave=overrides)))
    monkeypatch.setenv("BACKLIT_BENCH_PARAMS", str(bad))
    code, err = run_bench(["profile"], monkeypatch, capsys)
    assert code == 2 and err.strip() == f"Error: {bad}: {key}: must be a positive integer, got {got}"


@pytest.mark.parametrize("option, value", [("--iters", "-5"), ("--batch-size", "0"), ("--crop", "0"),
                                           ("--checkpoint-every", "0"), ("--seed", "-1")])
def test_invalid_numbers_on_the_train_command_line(option: str, value: str, train_data: dict[str, Path],
                                                   tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["train", "-m", "rave", "--backlit", str(train_data["backlit"]), "--welllit",
                                   str(train_data["welllit"]), "--out", str(tmp_path / "run"), option, value])
    assert res.exit_code == 2 and f"Invalid value for '{option}'" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"iters": -5}, "training setting total_iters must be a positive integer, got -5"),
    ({"overrides": {"batch_size": 0}}, "training setting batch_size must be a positive integer, got 0"),
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
])
def test_invalid_numbers_in_the_training_api(kwargs: dict, message: str, train_data: dict[str, Path],
                                             tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        train_method("rave", train_data["backlit"], train_data["welllit"], tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()
